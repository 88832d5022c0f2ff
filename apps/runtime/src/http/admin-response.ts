import { applyDecorators, Header } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

/** Admin answers are JSON that no cache keeps (tokens, approvals, audit timelines). */
export function JsonNoStore(): MethodDecorator {
  return applyDecorators(Header('content-type', 'application/json'), Header('cache-control', 'no-store'));
}

/** Sends a JSON answer as the admin listeners always have: `application/json`, `cache-control: no-store`. */
export function sendJson(reply: FastifyReply, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  void reply
    .status(status)
    .headers({ 'content-type': 'application/json', 'cache-control': 'no-store', ...headers })
    .send(JSON.stringify(body));
}

/** Sends a plain-text answer. */
export function sendText(reply: FastifyReply, status: number, text: string, headers: Readonly<Record<string, string>> = {}): void {
  void reply
    .status(status)
    .headers({ 'content-type': 'text/plain; charset=utf-8', ...headers })
    .send(text);
}

/** Refusals sent before the body was read close the connection: the unread body must not be parsed as a next request. */
export const CLOSE_CONNECTION = { connection: 'close' } as const;
