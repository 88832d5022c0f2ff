import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from '@portcullis/common';
import { SlackApiError } from './slack-client.js';
import { slackJobId, type SlackJob, type SlackJobQueue } from './slack-jobs.js';

/** Retry settings shared by both queues. */
export interface SlackQueueRetry {
  /** Attempts per job (rate-limit delays do not count). */
  maxAttempts: number;
  /** First backoff; doubles per attempt. */
  backoffMs: number;
}

/**
 * Slack jobs in BullMQ (Redis): idempotent job ids, exponential backoff, Slack's Retry-After on
 * 429 honoured by delaying the job, permanent Slack errors not retried. A worker killed mid-job
 * loses its lock; the job is stalled and retried by a live worker (or by the same worker after
 * its restart), and the handler's idempotency keeps it to one message.
 */
export class BullMqSlackQueue implements SlackJobQueue {
  private readonly queue: Queue<SlackJob>;
  private readonly connections: Redis[] = [];
  private worker: Worker<SlackJob> | undefined;

  constructor(private readonly opts: { redisUrl: string; name: string; retry: SlackQueueRetry; lockDurationMs: number; logger: Logger }) {
    this.queue = new Queue<SlackJob>(opts.name, {
      connection: this.connection(),
      defaultJobOptions: {
        attempts: opts.retry.maxAttempts,
        backoff: { type: 'exponential', delay: opts.retry.backoffMs },
        // Completed ids are kept a day: re-adding the same notification is a no-op.
        removeOnComplete: { age: 86_400 },
        removeOnFail: { age: 7 * 86_400 },
      },
    });
  }

  async add(job: SlackJob): Promise<void> {
    await this.queue.add(job.kind, job, { jobId: slackJobId(job) });
  }

  /** Starts processing jobs in this process. */
  start(handle: (job: SlackJob) => Promise<void>, concurrency = 4): void {
    this.worker = new Worker<SlackJob>(
      this.opts.name,
      async (job: Job<SlackJob>, token?: string) => {
        try {
          await handle(job.data);
        } catch (err) {
          if (err instanceof SlackApiError && err.retryAfterMs !== undefined) {
            await job.moveToDelayed(Date.now() + err.retryAfterMs, token);
            throw new DelayedError();
          }
          if (err instanceof SlackApiError && err.permanent) throw new UnrecoverableError(err.message);
          throw err;
        }
      },
      {
        connection: this.connection(),
        concurrency,
        lockDuration: this.opts.lockDurationMs,
        stalledInterval: Math.max(1000, Math.floor(this.opts.lockDurationMs / 2)),
        maxStalledCount: 10,
      },
    );
    this.worker.on('failed', (job, err) => {
      if (job !== undefined && job.attemptsMade >= (job.opts.attempts ?? 1)) {
        this.opts.logger.error('Slack notification failed for good', { job: job.id, err });
      }
    });
    this.worker.on('error', (err) => this.opts.logger.warn('Slack worker error', { err }));
  }

  async close(): Promise<void> {
    await this.worker?.close().catch(() => undefined);
    await this.queue.close().catch(() => undefined);
    for (const c of this.connections) c.disconnect();
  }

  private connection(): Redis {
    const c = new Redis(this.opts.redisUrl, { maxRetriesPerRequest: null, enableReadyCheck: true });
    c.on('error', () => undefined); // reconnects on its own; BullMQ reports what matters
    this.connections.push(c);
    return c;
  }
}

/**
 * The embedded mode's queue: jobs run in this process with the same retry rules, deduplicated
 * by id for the process's lifetime. Nothing survives a restart (nor does the in-memory store).
 */
export class InProcessSlackQueue implements SlackJobQueue {
  private readonly seen = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly handle: (job: SlackJob) => Promise<void>,
    private readonly retry: SlackQueueRetry,
    private readonly logger: Logger,
  ) {}

  add(job: SlackJob): Promise<void> {
    const id = slackJobId(job);
    if (this.seen.has(id) || this.closed) return Promise.resolve();
    this.seen.add(id);
    this.run(job, id, 1, 0);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    return Promise.resolve();
  }

  private run(job: SlackJob, id: string, attempt: number, delayMs: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.closed) return;
      this.handle(job).catch((err: unknown) => {
        if (err instanceof SlackApiError && err.retryAfterMs !== undefined) return this.run(job, id, attempt, err.retryAfterMs);
        if ((err instanceof SlackApiError && err.permanent) || attempt >= this.retry.maxAttempts) {
          this.logger.error('Slack notification failed for good', { job: id, err });
          return;
        }
        this.run(job, id, attempt + 1, this.retry.backoffMs * 2 ** (attempt - 1));
      });
    }, delayMs);
    timer.unref();
    this.timers.add(timer);
  }
}
