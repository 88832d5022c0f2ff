import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { listenerConstraint } from './http/listener.js';
import type { RequestHandler } from './http/http-listeners.js';

/**
 * The process's one Nest HTTP adapter (Fastify). It opens no socket of its own: Fastify's
 * `serverFactory` hands over the request handler, which the process's listeners call (see
 * HttpListeners), and the `listener` route constraint keeps each route on its own listener.
 */
export function createAdminHttpAdapter(): { adapter: FastifyAdapter; handler(): RequestHandler } {
  let handler: RequestHandler | undefined;
  const adapter = new FastifyAdapter({
    serverFactory: (h: (req: IncomingMessage, res: ServerResponse) => void) => {
      handler = h;
      // Never listens: Fastify closes it on shutdown, the listeners are HttpListeners'.
      return createServer();
    },
    routerOptions: { constraints: { listener: listenerConstraint } },
    // The edge's Host-routed names and the listeners' own limits apply; Fastify trusts nothing more.
    trustProxy: false,
  });
  return {
    adapter,
    handler: () => {
      if (handler === undefined) throw new Error('the HTTP adapter has no request handler yet');
      return handler;
    },
  };
}
