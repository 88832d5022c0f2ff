import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { listenUrl, type Logger } from '@portcullis/common';
import { SERVER_TLS_OPTIONS } from '@portcullis/tls';
import { LOGGER } from '../tokens.js';
import { tagListener, type Listener } from './listener.js';

/** The Fastify request handler of the process's one Nest HTTP adapter. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** A listener this process opens for the Nest adapter: its own node server. */
export interface OwnListenerSpec {
  readonly listener: Listener;
  /** What it serves, for the log line (`approvals API`, `audit replay API`). */
  readonly description: string;
  readonly host: string;
  readonly port: number;
  /** HTTPS with this certificate; plain HTTP when absent (the observability listener). */
  readonly tls?: { readonly certPem: string; readonly keyPem: string } | undefined;
}

/** A listener that owns its server and hands the Nest adapter only what is off its own path (the edge). */
export interface HostedListener {
  readonly listener: Listener;
  /** Starts listening; resolves with the bound port. */
  open(): Promise<number>;
  /** Stops listening (idempotent). */
  close(): Promise<void>;
}

interface Opened {
  readonly listener: Listener;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The process's HTTP listeners over one Nest HTTP adapter (Fastify): each listener is a node
 * server of its own (the TLS, timeouts and address its config key gives) whose requests are
 * tagged with the listener's name and handed to the one Fastify handler, where the `listener`
 * route constraint lets only that listener's routes match. Roles register their listener while
 * they start; {@link openAll} opens them once every role is ready to answer.
 */
@Injectable()
export class HttpListeners implements BeforeApplicationShutdown {
  private handler: RequestHandler | undefined;
  private readonly pending: (OwnListenerSpec | HostedListener)[] = [];
  private readonly opened = new Map<Listener, Opened>();

  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  /** Registers a listener the process opens for the adapter. */
  serve(spec: OwnListenerSpec): void {
    this.pending.push(spec);
  }

  /** Registers a listener that owns its server (it calls {@link dispatcher} for admin requests). */
  host(listener: HostedListener): void {
    this.pending.push(listener);
  }

  /** Hands requests received on `listener` to the Nest adapter. */
  dispatcher(listener: Listener): RequestHandler {
    return (req, res) => {
      tagListener(req, listener);
      const handler = this.handler;
      if (handler === undefined) {
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end('portcullis: starting\n');
        return;
      }
      handler(req, res);
    };
  }

  /** The adapter's request handler, once the application is initialised. */
  attach(handler: RequestHandler): void {
    this.handler = handler;
  }

  /** Opens every registered listener, in registration order. */
  async openAll(): Promise<void> {
    for (const entry of this.pending.splice(0)) {
      const opened = 'open' in entry ? await this.openHosted(entry) : await this.openOwn(entry);
      this.opened.set(opened.listener, opened);
    }
  }

  /** The bound port of `listener`, once open. */
  port(listener: Listener): number | undefined {
    return this.opened.get(listener)?.port;
  }

  /** Closes every open listener (cutting open connections). */
  async closeAll(): Promise<void> {
    const all = [...this.opened.values()];
    this.opened.clear();
    await Promise.all(all.map((o) => o.close()));
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.closeAll();
  }

  private async openHosted(hosted: HostedListener): Promise<Opened> {
    const port = await hosted.open();
    return { listener: hosted.listener, port, close: () => hosted.close() };
  }

  private async openOwn(spec: OwnListenerSpec): Promise<Opened> {
    const handle = this.dispatcher(spec.listener);
    const server: HttpServer | HttpsServer =
      spec.tls === undefined
        ? createHttpServer(handle)
        : createHttpsServer(
            {
              cert: spec.tls.certPem,
              key: spec.tls.keyPem,
              ...SERVER_TLS_OPTIONS,
              headersTimeout: 10_000,
              requestTimeout: 30_000,
              connectionsCheckingInterval: 1_000,
            },
            handle,
          );
    if (spec.tls === undefined) server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(spec.port, spec.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    const url = listenUrl(spec.tls === undefined ? 'http' : 'https', spec.host, port);
    this.logger.info(`${spec.description} listening`, { listener: spec.listener, url });
    return {
      listener: spec.listener,
      port,
      close: async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }
}
