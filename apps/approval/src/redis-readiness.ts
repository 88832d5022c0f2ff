import type { Redis } from 'ioredis';
import type { ReadinessCheck } from '@portcullis/observability';

/**
 * `/readyz` check `redis` of an approval role that keeps its projection in Redis: not ready while
 * the connection is down (the gate cannot open, find or consume approvals, so edges fail closed),
 * with a reason naming the server — host, port and database only, never the URL's credentials.
 */
export function redisReadiness(client: Redis, url: string): ReadinessCheck {
  const where = redisAddress(url);
  return {
    name: 'redis',
    async check() {
      const down = (detail: string): Error => new Error(`redis at ${where} unreachable (${detail}): pending approvals can be neither read nor written`);
      // ioredis queues commands while it reconnects: ask for the connection state first, not a PING that would wait.
      if (client.status !== 'ready') throw down(`connection ${client.status}`);
      try {
        await client.ping();
      } catch (err) {
        // The server went away between the state check and the PING.
        throw down((err as Error).message.slice(0, 80));
      }
      return true;
    },
  };
}

/** `host:port/db` of a redis:// or rediss:// URL, without user or password. */
export function redisAddress(url: string): string {
  try {
    const u = new URL(url);
    const db = u.pathname.replace(/^\//, '');
    return `${u.hostname}:${u.port || '6379'}${db !== '' ? `/${db}` : ''}`;
  } catch {
    return '(unparseable approval.redis.url)';
  }
}
