import { Inject, Injectable, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, HealthIndicatorService, type HealthCheckResult, type HealthIndicatorFunction, type HealthIndicatorResult } from '@nestjs/terminus';
import type { MessageBus } from '@portcullis/bus';
import type { Readiness, ReadinessReport } from '@portcullis/observability';
import { MESSAGE_BUS, READINESS } from './tokens.js';

/**
 * Health and readiness through @nestjs/terminus, with the process's {@link Readiness} checks
 * (libs/observability) as the source of truth: each check becomes one Terminus indicator, and the
 * answer keeps the shape clients read (`{ ready, checks: { name: 'ok' | why } }`).
 */
@Injectable()
export class ReadinessHealth {
  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(HealthIndicatorService) private readonly indicators: HealthIndicatorService,
    @Inject(READINESS) private readonly readiness: Readiness,
    @Inject(MESSAGE_BUS) private readonly bus: MessageBus,
  ) {}

  /** Runs every check now (each bounded by its timeout): the observability listener's `/readyz`. */
  async report(): Promise<ReadinessReport> {
    const report = await this.readiness.run();
    return summary(
      await this.check(
        Object.entries(report.checks).map(
          ([name, state]) =>
            () =>
              this.indicator(name, state === 'ok', state),
        ),
      ),
    );
  }

  /**
   * The edge listener's `/readyz`, asked by load balancers every few seconds: the bus connected
   * and the last full report ready, without running the checks again.
   */
  async quick(): Promise<boolean> {
    const last = this.readiness.lastReport();
    const result = await this.check([
      () => this.indicator('bus', this.bus.isConnected(), 'not connected'),
      () => this.indicator('checks', last.ready, 'not ready'),
    ]);
    return result.status === 'ok';
  }

  private indicator(name: string, up: boolean, why: string): HealthIndicatorResult {
    const session = this.indicators.check(name);
    return up ? session.up() : session.down({ reason: why });
  }

  private async check(indicators: HealthIndicatorFunction[]): Promise<HealthCheckResult> {
    try {
      return await this.health.check(indicators);
    } catch (err) {
      // Terminus answers a failed check by throwing 503 with the result; the caller renders it.
      if (err instanceof ServiceUnavailableException) return err.getResponse() as HealthCheckResult;
      throw err;
    }
  }
}

function summary(result: HealthCheckResult): ReadinessReport {
  const checks = Object.fromEntries(Object.entries(result.details).map(([name, detail]) => [name, detail.status === 'up' ? 'ok' : reasonOf(detail)]));
  return { ready: result.status === 'ok', checks };
}

/** Why a check is down: the reason {@link ReadinessHealth} gave it, else its status. */
function reasonOf(detail: HealthIndicatorResult[string]): string {
  const reason: unknown = detail['reason'];
  return typeof reason === 'string' ? reason : detail.status;
}
