import type { IncomingMessage } from 'node:http';
import { createParamDecorator, Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Identity } from '@portcullis/contracts';
import { TokenError, TokenErrorCode, type TokenVerifier } from '@portcullis/identity';
import { CLOCK, TOKEN_VERIFIER, type Clock } from '../tokens.js';

/** Why a caller was not authenticated. */
export const AuthenticationFailure = {
  /** No Authorization header. */
  Missing: 'missing',
  /** An Authorization header that is not `Bearer <token>`. */
  NotBearer: 'not_bearer',
  /** The verifier refused the token. */
  Refused: 'refused',
  /** The verifier could not check the token right now (JWKS unreachable). */
  Unavailable: 'unavailable',
} as const;
export type AuthenticationFailure = (typeof AuthenticationFailure)[keyof typeof AuthenticationFailure];

/** A caller the bearer guard refused; each listener's filter turns it into its 401 (or 503). */
export class AuthenticationError extends Error {
  override readonly name = 'AuthenticationError';
  constructor(
    readonly failure: AuthenticationFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A caller outside the groups a route is for; each listener's filter turns it into its 403. */
export class CallerForbiddenError extends Error {
  override readonly name = 'CallerForbiddenError';
  constructor(
    readonly caller: Identity,
    /** What the caller is not, e.g. `an admin group (edge.admin.groups)`. */
    readonly missing: string,
  ) {
    super(`${caller.subject} is not in ${missing}`);
  }
}

const callers = new WeakMap<object, Identity>();

/**
 * Authentication for the admin routes: `Authorization: Bearer <token>`, verified by the process's
 * one {@link TokenVerifier}; the identity is then available to the handler as `@Caller()`.
 */
@Injectable()
export class BearerAuthGuard implements CanActivate {
  constructor(
    @Inject(TOKEN_VERIFIER) private readonly verifier: TokenVerifier,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<{ raw: IncomingMessage }>();
    const auth = req.raw.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) {
      throw auth === ''
        ? new AuthenticationError(AuthenticationFailure.Missing, 'no bearer token')
        : new AuthenticationError(AuthenticationFailure.NotBearer, 'the Authorization header is not a bearer token');
    }
    try {
      callers.set(req, await this.verifier.verify(m[1]!, this.clock()));
    } catch (err) {
      const unavailable = err instanceof TokenError && err.code === TokenErrorCode.Unavailable;
      const message = err instanceof TokenError ? err.message : 'the token could not be verified';
      throw new AuthenticationError(unavailable ? AuthenticationFailure.Unavailable : AuthenticationFailure.Refused, message, { cause: err });
    }
    return true;
  }
}

/** The identity {@link BearerAuthGuard} verified for this request. */
export const Caller = createParamDecorator((_data: unknown, context: ExecutionContext): Identity => {
  const caller = callers.get(context.switchToHttp().getRequest<object>());
  if (caller === undefined) throw new Error('@Caller() on a route without BearerAuthGuard');
  return caller;
});

/**
 * Authorisation by group: the caller (after {@link BearerAuthGuard}) must be in one of
 * `groups()`; nobody is when the list is empty.
 */
export abstract class GroupsGuard implements CanActivate {
  /** The groups allowed in. */
  protected abstract groups(): readonly string[];
  /** What a refused caller is not, for the 403 (`an admin group (edge.admin.groups)`). */
  protected abstract readonly missing: string;

  canActivate(context: ExecutionContext): boolean {
    const caller = callers.get(context.switchToHttp().getRequest<object>());
    if (caller === undefined) throw new Error(`${this.constructor.name} runs after BearerAuthGuard`);
    const allowed = this.groups();
    if (!caller.groups.some((g) => allowed.includes(g))) throw new CallerForbiddenError(caller, this.missing);
    return true;
  }
}
