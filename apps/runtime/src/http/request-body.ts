import type { Readable } from 'node:stream';
import { Injectable, type PipeTransform } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';

/** A request body over its route's limit (mapped to 413 by each listener's exception filter). */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
  constructor(readonly limitBytes: number) {
    super(`the body exceeds ${limitBytes} bytes`);
  }
}

/**
 * Leaves request bodies unread until a route asks for them: `@Body()` is the raw request stream
 * (undefined without a body), read by {@link ReadBodyPipe} after the guards. So callers who are
 * not allowed in are refused before their body is looked at, and each route has its own limit.
 */
export function streamRequestBodies(app: NestFastifyApplication): void {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
}

/**
 * Reads the raw body (a stream from {@link streamRequestBodies}) into bytes, refusing more than
 * `limitBytes` with {@link BodyTooLargeError}. `drain`: read the rest and drop it before
 * refusing, so the connection can carry the next request; otherwise stop reading at once (the
 * refusal then closes the connection).
 */
@Injectable()
export class ReadBodyPipe implements PipeTransform<Readable | undefined, Promise<Buffer>> {
  constructor(
    private readonly limitBytes: number,
    private readonly drain = false,
  ) {}

  async transform(body: Readable | undefined): Promise<Buffer> {
    if (body === undefined || body === null) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size <= this.limitBytes) {
        chunks.push(chunk);
        continue;
      }
      if (!this.drain) throw new BodyTooLargeError(this.limitBytes);
    }
    if (size > this.limitBytes) throw new BodyTooLargeError(this.limitBytes);
    return Buffer.concat(chunks);
  }
}
