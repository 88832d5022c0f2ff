import { Injectable } from '@nestjs/common';

/** A held queue group; `open()` lets the transport serve it. */
export interface HeldQueue {
  open(): void;
}

/**
 * Which queue groups the bus transport may serve yet. A role that must not take a share of the
 * requests before it can answer them (the policy role, until it holds a valid policy) holds its
 * queue group while it starts and opens it when ready; every other group is served at once.
 */
@Injectable()
export class BusServeGate {
  private readonly held = new Map<string, { readonly opened: Promise<void>; open(): void; isOpen: boolean }>();

  /** Holds `queue` back until the returned handle's `open()`; call before the transport listens. */
  hold(queue: string): HeldQueue {
    const existing = this.held.get(queue);
    if (existing !== undefined) return existing;
    let release: () => void = () => undefined;
    const entry = {
      opened: new Promise<void>((resolve) => (release = resolve)),
      isOpen: false,
      open(): void {
        entry.isOpen = true;
        release();
      },
    };
    this.held.set(queue, entry);
    return entry;
  }

  /** Whether `queue` may be served now. */
  isOpen(queue: string): boolean {
    return this.held.get(queue)?.isOpen ?? true;
  }

  /** Resolves once `queue` may be served (at once when it was never held). */
  whenOpen(queue: string): Promise<void> {
    return this.held.get(queue)?.opened ?? Promise.resolve();
  }
}
