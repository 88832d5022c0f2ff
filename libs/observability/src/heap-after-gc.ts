/**
 * The V8 heap in use right after the latest major GC: the live set, which is what a leak grows.
 * `nodejs_heap_used_bytes` samples the heap at scrape time, garbage included, so it saw-tooths
 * with the allocation rate; this one only moves when what survives a full collection moves.
 */
import { PerformanceObserver, constants, type NodeGCPerformanceDetail, type PerformanceEntry } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

/** What the observer has seen so far. */
export interface HeapAfterGc {
  /** Heap used (bytes) right after the latest major GC; undefined until one happened. */
  readonly bytes: number | undefined;
  /** Major GCs seen since observation started. */
  readonly majorGcs: number;
}

let observer: PerformanceObserver | undefined;
let state: { bytes: number | undefined; majorGcs: number } = { bytes: undefined, majorGcs: 0 };

/**
 * Starts observing major GCs (once per process: one observer however many registries ask) and
 * returns a reader of the latest value. The observer is cheap — one entry per GC — and does not
 * keep the process alive.
 */
export function observeHeapAfterGc(): () => HeapAfterGc {
  if (observer === undefined) {
    observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) if (isMajorGc(entry)) onMajorGc();
    });
    observer.observe({ entryTypes: ['gc'] });
  }
  return () => state;
}

function onMajorGc(): void {
  // The entry is delivered just after the collection: the heap has barely grown since.
  state = { bytes: getHeapStatistics().used_heap_size, majorGcs: state.majorGcs + 1 };
}

function isMajorGc(entry: PerformanceEntry): boolean {
  // Node sets `detail` (NodeGCPerformanceDetail) on gc entries; the base type does not declare it.
  const detail = (entry as PerformanceEntry & { readonly detail?: Partial<NodeGCPerformanceDetail> | null }).detail;
  return detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}
