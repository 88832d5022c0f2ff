import { BusError } from './bus.port.js';
import type { BusHeaders, BusMessage, BusSubscription, MessageBus, Responder } from './bus.port.js';
import { errorMessage } from './error-message.js';
import type { Logger } from '@portcullis/common';
import { isPublishSubject, subjectMatches } from './subject-match.js';

interface Server {
  readonly pattern: string;
  readonly queue: string;
  readonly responder: Responder;
  readonly inFlight: Set<Promise<void>>;
  active: boolean;
}

interface Subscriber {
  readonly pattern: string;
  readonly handler: (msg: BusMessage) => void;
  active: boolean;
}

const NO_HEADERS: BusHeaders = Object.freeze({});

function message(subject: string, data: Uint8Array, headers: BusHeaders | undefined): BusMessage {
  // Copies, as the wire would: neither side may see the other mutate its buffer.
  return { subject, data: data.slice(), headers: headers === undefined ? NO_HEADERS : Object.freeze({ ...headers }) };
}

/**
 * {@link MessageBus} inside one process with NATS semantics: queue groups get one delivery each,
 * round-robin among members; plain subscribers all get broadcasts; `*` and `>` wildcards;
 * delivery is always asynchronous.
 */
export class InProcessMessageBus implements MessageBus {
  private closed = false;
  private readonly servers = new Set<Server>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly roundRobin = new Map<string, number>();
  private readonly pendingRequests = new Set<(error: BusError) => void>();
  private inboxSeq = 0;

  constructor(private readonly logger: Logger) {}

  request(subject: string, data: Uint8Array, opts: { timeoutMs: number; headers?: BusHeaders }): Promise<BusMessage> {
    const what = `request to ${subject}`;
    if (this.closed) return Promise.reject(new BusError('closed', `${what} failed: the bus is closed`));
    if (!isPublishSubject(subject)) return Promise.reject(new BusError('unavailable', `${what} failed: invalid subject`));
    const chosen = this.pickQueueMembers(subject);
    if (chosen.length === 0) return Promise.reject(new BusError('no_responders', `${what} failed: no responders`));
    return new Promise<BusMessage>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pendingRequests.delete(abort);
        fn();
      };
      const abort = (error: BusError): void => settle(() => reject(error));
      // Ref'd on purpose: the caller is waiting on it; it is cleared on reply, timeout or close.
      const timer = setTimeout(() => abort(new BusError('timeout', `${what} timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
      this.pendingRequests.add(abort);
      const inbox = `_INBOX.inproc.${++this.inboxSeq}`;
      for (const server of chosen) {
        const request = message(subject, data, opts.headers);
        this.run(
          server,
          request,
          (reply) => settle(() => resolve(message(inbox, reply, undefined))),
          (error) => settle(() => reject(new BusError('remote', errorMessage(error), { cause: error }))),
        );
      }
    });
  }

  serve(subject: string, queue: string, responder: Responder): BusSubscription {
    this.assertOpen(`serve ${subject}`);
    const server: Server = { pattern: subject, queue, responder, inFlight: new Set(), active: true };
    this.servers.add(server);
    return {
      unsubscribe: async () => {
        server.active = false;
        this.servers.delete(server);
        await Promise.allSettled([...server.inFlight]);
      },
    };
  }

  publish(subject: string, data: Uint8Array, headers?: BusHeaders): void {
    this.assertOpen(`publish to ${subject}`);
    for (const sub of this.subscribers) {
      if (!subjectMatches(sub.pattern, subject)) continue;
      const msg = message(subject, data, headers);
      queueMicrotask(() => {
        if (!sub.active) return;
        try {
          sub.handler(msg);
        } catch (error) {
          this.logger.error('subscriber threw', { subject, error: errorMessage(error) });
        }
      });
    }
    // A queue group also gets broadcasts, one member each; the answer goes nowhere.
    for (const server of this.pickQueueMembers(subject)) {
      this.run(
        server,
        message(subject, data, headers),
        () => undefined,
        (error) => this.logger.warn('responder threw on a broadcast', { subject, error: errorMessage(error) }),
      );
    }
  }

  subscribe(subject: string, handler: (msg: BusMessage) => void): BusSubscription {
    this.assertOpen(`subscribe to ${subject}`);
    const sub: Subscriber = { pattern: subject, handler, active: true };
    this.subscribers.add(sub);
    return {
      unsubscribe: () => {
        sub.active = false;
        this.subscribers.delete(sub);
        return Promise.resolve();
      },
    };
  }

  isConnected(): boolean {
    return !this.closed;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const abort of [...this.pendingRequests]) abort(new BusError('closed', 'the bus was closed while waiting for a reply'));
    const servers = [...this.servers];
    this.servers.clear();
    this.subscribers.forEach((s) => (s.active = false));
    this.subscribers.clear();
    // Like a NATS drain, in-flight responders are not awaited: one that never answers must not block close.
    for (const s of servers) s.active = false;
    return Promise.resolve();
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new BusError('closed', `${what} failed: the bus is closed`);
  }

  /** One member per queue group whose subject matches, round-robin within the group. */
  private pickQueueMembers(subject: string): Server[] {
    const groups = new Map<string, Server[]>();
    for (const server of this.servers) {
      if (!server.active || !subjectMatches(server.pattern, subject)) continue;
      const members = groups.get(server.queue);
      if (members === undefined) groups.set(server.queue, [server]);
      else members.push(server);
    }
    const chosen: Server[] = [];
    for (const [queue, members] of groups) {
      const next = this.roundRobin.get(queue) ?? 0;
      this.roundRobin.set(queue, next + 1);
      const member = members[next % members.length];
      if (member !== undefined) chosen.push(member);
    }
    return chosen;
  }

  private run(server: Server, request: BusMessage, onReply: (reply: Uint8Array) => void, onError: (error: unknown) => void): void {
    const done = (async () => {
      await Promise.resolve(); // always asynchronous, like the wire
      try {
        onReply(await server.responder(request));
      } catch (error) {
        onError(error);
      }
    })();
    server.inFlight.add(done);
    void done.then(() => server.inFlight.delete(done));
  }
}
