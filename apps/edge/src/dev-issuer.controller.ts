import { All, Body, Catch, Get, Headers, HttpCode, Inject, Post, Req, Res, UseFilters, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '@portcullis/common';
import { DEV_ISSUER_PATH, DevIssuerError, parseDevTokenRequest, type DevIssuer } from '@portcullis/identity';
import { BodyTooLargeError, DEV_ISSUER, JsonNoStore, Listener, ListenerController, LOGGER, ReadBodyPipe, sendJson } from '../../runtime/src/index.js';
import { sendEdgeInternalError } from './edge-admin.filter.js';

/** Largest token request form the development issuer reads. */
const MAX_FORM_BYTES = 8 * 1024;

/** The development issuer's refusals as OAuth2 errors. */
@Catch()
export class DevIssuerFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (err instanceof DevIssuerError)
      return sendJson(reply, err.oauthError === 'invalid_client' ? 401 : 400, { error: err.oauthError, error_description: err.message });
    if (err instanceof BodyTooLargeError) return sendJson(reply, 413, { error: 'invalid_request', error_description: 'form too large' });
    this.logger.error('unhandled error in request', { err });
    if (!reply.sent) sendEdgeInternalError(reply);
  }
}

/**
 * The development issuer on the edge listener (`identity.devIssuer.enabled`): OIDC discovery,
 * the JWKS, and the `client_credentials` token endpoint for the configured clients.
 */
@ListenerController(Listener.Edge)
@UseFilters(DevIssuerFilter)
export class DevIssuerController {
  constructor(@Inject(DEV_ISSUER) private readonly issuer: DevIssuer) {}

  @Get(`${DEV_ISSUER_PATH}/.well-known/openid-configuration`)
  @JsonNoStore()
  discovery(): Record<string, unknown> {
    return this.issuer.discovery();
  }

  @Get(`${DEV_ISSUER_PATH}/jwks.json`)
  @JsonNoStore()
  jwks(): unknown {
    return this.issuer.jwks();
  }

  @Post(`${DEV_ISSUER_PATH}/token`)
  @HttpCode(200)
  @JsonNoStore()
  async token(
    @Body(new ReadBodyPipe(MAX_FORM_BYTES)) form: Buffer,
    @Headers('authorization') authorization: string | undefined,
  ): Promise<Record<string, unknown>> {
    const t = await this.issuer.issue(parseDevTokenRequest(form.toString('utf8'), authorization));
    return { access_token: t.accessToken, token_type: 'Bearer', expires_in: t.expiresInSeconds, ...(t.scope ? { scope: t.scope } : {}) };
  }

  /** Anything else under the issuer: the token endpoint takes POST only; the rest does not exist. */
  @All(DEV_ISSUER_PATH)
  root(@Res() reply: FastifyReply): void {
    sendJson(reply, 404, { error: 'not_found' });
  }

  @All(`${DEV_ISSUER_PATH}/*`)
  other(@Req() req: FastifyRequest, @Res() reply: FastifyReply): void {
    if ((req.url.split('?')[0] ?? '') === `${DEV_ISSUER_PATH}/token`) return sendJson(reply, 405, { error: 'invalid_request', error_description: 'use POST' });
    sendJson(reply, 404, { error: 'not_found' });
  }
}
