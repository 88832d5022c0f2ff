/**
 * The admit step's require_approval branch: the request's body is buffered (bounded), an approval
 * is bound to the request's fingerprint, and the request is held until a human decides.
 */
import type { IncomingMessage } from 'node:http';
// The pure entry point: the approval library's index also loads Redis and BullMQ.
import { bodyExcerpt, requestFingerprint } from '@portcullis/approval/pure';
import type { BodyDigest } from '@portcullis/masking';
import { APPROVAL_HEADER, ApprovalGate, type HeldRequest } from './approval-gate.js';
import { headerValue, type EdgeRequest } from './edge-request.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';

const NO_BODY = Buffer.alloc(0);

/**
 * Holds `ctx` for approval. True when it may be forwarded (its buffered body is `ctx.body`);
 * false when it was answered (denied, still pending, body too large) or the client left, and its
 * request.completed recorded.
 */
export async function holdForApproval(ctx: EdgeRequest, gate: ApprovalGate, maxBodyBytes: number, digest: BodyDigest): Promise<boolean> {
  const clientGone = new AbortController();
  const onClose = (): void => {
    if (!ctx.res.writableFinished) clientGone.abort();
  };
  ctx.res.on('close', onClose);
  let body: Buffer;
  try {
    const approvalId = ApprovalGate.approvalIdFrom(ctx.req.headers[APPROVAL_HEADER]);
    // An upgrade request (exec, attach, port-forward) has no body to bind: its stream starts after the 101.
    body = ctx.upgrade !== undefined ? NO_BODY : await readBody(ctx.req, maxBodyBytes);
    await gate.hold(heldRequest(ctx, body, approvalId, digest), clientGone.signal);
  } catch (err) {
    ctx.res.off('close', onClose);
    if (clientGone.signal.aborted) {
      ctx.complete(499, 'client disconnected while held for approval', false);
      return false;
    }
    const gw = ctx.fail(err);
    // Approval answers (pending, denied) are outcomes, not failures; an oversized body is a failure and says so.
    ctx.complete(ctx.res.statusCode, gw.code === GatewayErrorCode.BodyTooLarge ? gw.message : '', false);
    return false;
  }
  ctx.res.off('close', onClose);
  ctx.body = body;
  return true;
}

/**
 * What the approval gate binds the approval to: identity, attributes, query and body. The body's
 * digest is keyed: the fingerprint and the digest are in the audit log beside every other input,
 * so a plain hash would let a reader of the log try candidate bodies against them.
 */
function heldRequest(ctx: EdgeRequest, body: Buffer, approvalId: string, digest: BodyDigest): HeldRequest {
  const hash = digest.of(body);
  const identity = ctx.identity!;
  return {
    requestId: ctx.id,
    identity,
    attributes: ctx.attributes,
    decision: ctx.decision,
    fingerprint: requestFingerprint(identity, ctx.attributes, ctx.query, hash),
    bodySha256: hash,
    bodyExcerpt: bodyExcerpt(body, ctx.attributes.kube?.resource ?? '', headerValue(ctx.req.headers['content-type'])),
    approvalId,
  };
}

/** Reads a request body up to `max` bytes; GatewayError `body_too_large` (413) above. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) {
    return Promise.reject(
      new GatewayError(GatewayErrorCode.BodyTooLarge, `portcullis: the request body (${declared} bytes) exceeds the ${max} bytes a held request may carry`),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.resume();
        reject(new GatewayError(GatewayErrorCode.BodyTooLarge, `portcullis: the request body exceeds the ${max} bytes a held request may carry`));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}
