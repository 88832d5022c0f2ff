import type { IncomingMessage } from 'node:http';
import { applyDecorators, Controller } from '@nestjs/common';
import { RouteConstraints } from '@nestjs/platform-fastify';
import type { ConstraintStrategy, HTTPVersion, Handler } from 'find-my-way';

/** The process's HTTP listeners; every admin route answers on exactly one of them. */
export const Listener = {
  /** The edge's own HTTPS listener (`edge.listen`): its data path stays plain Node, the rest is Nest. */
  Edge: 'edge',
  /** The approval role's HTTPS listener (`approval.listen`): approvers' REST API, Slack interactions. */
  Approval: 'approval',
  /** The audit role's HTTPS listener (`audit.listen`): the replay API. */
  Audit: 'audit',
  /** Plain HTTP (`observability.listen`): `/metrics`, `/healthz`, `/readyz`. */
  Observability: 'observability',
} as const;
export type Listener = (typeof Listener)[keyof typeof Listener];

const LISTENERS = new Set<string>(Object.values(Listener));
const listenerOfRequest = new WeakMap<IncomingMessage, Listener>();

/** Marks a request as received on `listener` (before it reaches the Fastify handler). */
export function tagListener(req: IncomingMessage, listener: Listener): void {
  listenerOfRequest.set(req, listener);
}

/** The listener a request arrived on. */
export function listenerOf(req: IncomingMessage): Listener | undefined {
  return listenerOfRequest.get(req);
}

/**
 * The Fastify route constraint `listener`: a route declared for one listener matches only
 * requests received on it, and a request from a listener matches no route without the
 * constraint (`mustMatchWhenDerived`), so nothing answers on a listener it was not meant for.
 */
export const listenerConstraint: ConstraintStrategy<HTTPVersion.V1> = {
  name: 'listener',
  mustMatchWhenDerived: true,
  storage() {
    const handlers = new Map<string, Handler<HTTPVersion.V1>>();
    return {
      get: (value) => handlers.get(value) ?? null,
      set: (value, handler) => void handlers.set(value, handler),
    };
  },
  // A request without a listener (none: every server tags its requests) matches no listener's routes.
  deriveConstraint: (req: IncomingMessage): string => listenerOfRequest.get(req) ?? '',
  validate(value: unknown): void {
    if (typeof value !== 'string' || !LISTENERS.has(value)) throw new TypeError(`unknown listener ${JSON.stringify(value)}`);
  },
};

/**
 * Puts every route of the decorated controller on `listener` (`@RouteConstraints` of
 * @nestjs/platform-fastify is per handler; this applies it to each handler of the class).
 */
export function OnListener(listener: Listener): ClassDecorator {
  return (target) => {
    const proto = (target as unknown as { prototype: object }).prototype;
    for (const key of Object.getOwnPropertyNames(proto)) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, key);
      if (key === 'constructor' || typeof descriptor?.value !== 'function') continue;
      RouteConstraints({ listener })(proto, key, descriptor);
    }
  };
}

/** A controller whose routes answer only on `listener`. */
export function ListenerController(listener: Listener): ClassDecorator {
  return applyDecorators(Controller(), OnListener(listener));
}
