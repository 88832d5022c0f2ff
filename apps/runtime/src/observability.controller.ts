import { All, Get, Header, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PROMETHEUS_CONTENT_TYPE, type PortcullisMetrics } from '@portcullis/observability';
import { ListenerController, Listener } from './http/listener.js';
import { sendText } from './http/admin-response.js';
import { ReadinessHealth } from './readiness-health.js';
import { METRICS } from './tokens.js';

const NO_STORE = { 'cache-control': 'no-store' } as const;

/**
 * The observability listener (`observability.listen`, plain HTTP, no authentication: bind it to
 * a private address): `/metrics` (Prometheus), `/healthz` (the process runs), `/readyz` (every
 * readiness check, 503 naming the ones that failed).
 */
@ListenerController(Listener.Observability)
export class ObservabilityController {
  constructor(
    @Inject(METRICS) private readonly metrics: PortcullisMetrics,
    @Inject(ReadinessHealth) private readonly health: ReadinessHealth,
  ) {}

  @Get('healthz')
  @Header('content-type', 'text/plain; charset=utf-8')
  @Header('cache-control', 'no-store')
  healthz(): string {
    return 'ok\n';
  }

  @Get('readyz')
  async readyz(@Res() reply: FastifyReply): Promise<void> {
    const report = await this.health.report();
    reply.status(report.ready ? 200 : 503).headers({ 'content-type': 'application/json', ...NO_STORE });
    await reply.send(`${JSON.stringify(report)}\n`);
  }

  @Get('metrics')
  async scrape(@Res() reply: FastifyReply): Promise<void> {
    let text: string;
    try {
      text = await this.metrics.registry.render();
    } catch {
      return sendText(reply, 500, 'metrics unavailable\n', NO_STORE);
    }
    reply.status(200).headers({ 'content-type': PROMETHEUS_CONTENT_TYPE, ...NO_STORE });
    await reply.send(text);
  }

  /** Everything else: 405 for methods other than GET and HEAD, else 404 naming the paths. */
  @All('*')
  other(@Req() req: FastifyRequest, @Res() reply: FastifyReply): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(reply, 405, 'method not allowed\n', NO_STORE);
    sendText(reply, 404, 'not found: /metrics, /healthz, /readyz\n', NO_STORE);
  }
}
