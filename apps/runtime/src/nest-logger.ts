import type { LoggerService } from '@nestjs/common';
import type { Logger } from '@portcullis/common';

/**
 * Nest's own log output (start-up, exceptions it caught, the microservice transport) as lines of
 * the process's pino logger: one log format per process. Nest's chatty `log` level (routes mapped,
 * modules initialised) becomes `debug`.
 */
export class NestLoggerAdapter implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, ...rest: unknown[]): void {
    this.logger.debug(text(message), fields(rest));
  }

  error(message: unknown, ...rest: unknown[]): void {
    // Nest passes (message, stack?, context?) or (error, context?).
    if (message instanceof Error) {
      this.logger.error(message.message, { err: message, ...fields(rest) });
      return;
    }
    const [stack, ...others] = rest;
    const hasStack = typeof stack === 'string' && stack.includes('\n');
    this.logger.error(text(message), { ...fields(hasStack ? others : rest), ...(hasStack ? { stack } : {}) });
  }

  warn(message: unknown, ...rest: unknown[]): void {
    this.logger.warn(text(message), fields(rest));
  }

  debug(message: unknown, ...rest: unknown[]): void {
    this.logger.debug(text(message), fields(rest));
  }

  verbose(message: unknown, ...rest: unknown[]): void {
    this.logger.debug(text(message), fields(rest));
  }

  fatal(message: unknown, ...rest: unknown[]): void {
    this.error(message, ...rest);
  }
}

function text(message: unknown): string {
  if (typeof message === 'string') return message;
  if (message instanceof Error) return message.message;
  try {
    return JSON.stringify(message);
  } catch {
    return String(message);
  }
}

/** The last string argument is Nest's context (the class that logged). */
function fields(rest: readonly unknown[]): Record<string, unknown> {
  const context = rest.at(-1);
  return { component: 'nest', ...(typeof context === 'string' ? { context } : {}) };
}
