/**
 * The soak benchmark's verdict (bench/soak-report.ts): the slope after warm-up and "flat" only when
 * the trend is within noise — a sandbox keeping 1.5 KB per request must read as growing.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { analyse, renderSoakMarkdown, renderSoakSvg, trend, warmupOf, type SoakFigures, type SoakMode } from '../../bench/soak-report.js';

/** Deterministic jitter in [-1, 1). */
const jitter = (i: number): number => {
  const s = Math.sin(i * 12.9898) * 43758.5453;
  return (s - Math.floor(s)) * 2 - 1;
};

function samples(n: number, perSample: number, rss: (x: number, i: number) => number, heap: (x: number, i: number) => number | null): SoakMode['samples'] {
  return Array.from({ length: n }, (_, i) => {
    const x = i * perSample;
    return { requests: x, seconds: i * 5, rssMb: { p: rss(x, i) }, heapAfterGcMb: { p: heap(x, i) } };
  });
}

function figures(mode: SoakMode): SoakFigures {
  return {
    date: '2026-12-07',
    commit: 'abc1234',
    node: 'v20.20.2',
    cpus: 2,
    loadAverage: { start: [1, 1, 1], end: [1, 1, 1] },
    connections: 8,
    requestMix: ['/api'],
    modes: [mode],
  };
}

describe('soak report', () => {
  test('a flat, noisy series is flat; a 1.5 KB-per-request leak is growing at ~150 MB per 100k requests', () => {
    const flat = trend(
      Array.from({ length: 30 }, (_, i) => ({ x: i * 5000, y: 200 + 4 * jitter(i) })),
      30_000,
    );
    assert.ok(flat !== undefined);
    assert.ok(flat.flat, `flat: slope ${flat.slopePer100k.toFixed(2)} MB/100k, rise ${flat.riseMb.toFixed(2)} MB, noise ${flat.noiseMb.toFixed(2)} MB`);
    assert.ok(Math.abs(flat.slopePer100k) < 5);

    const leak = trend(
      Array.from({ length: 30 }, (_, i) => ({ x: i * 5000, y: 180 + i * 5000 * 0.0015 + 4 * jitter(i) })),
      30_000,
    );
    assert.ok(leak !== undefined);
    assert.equal(leak.flat, false);
    assert.ok(Math.abs(leak.slopePer100k - 150) < 10, `slope ${leak.slopePer100k.toFixed(1)} MB/100k`);
  });

  test('a small drift is flat only below the noise and the floor', () => {
    // 1 MB over the window with no noise: under the 2 MB floor.
    const tiny = trend(
      Array.from({ length: 10 }, (_, i) => ({ x: i * 10_000, y: 100 + i / 9 })),
      0,
    );
    assert.equal(tiny?.flat, true);
    // 10 MB over the window with no noise: growing.
    const drift = trend(
      Array.from({ length: 10 }, (_, i) => ({ x: i * 10_000, y: 100 + (10 * i) / 9 })),
      0,
    );
    assert.equal(drift?.flat, false);
    assert.equal(
      trend(
        [
          { x: 0, y: 1 },
          { x: 1, y: 2 },
        ],
        0,
      ),
      undefined,
      'fewer than 3 points: no trend',
    );
  });

  test('warm-up lasts until the first major GC when that comes after the mode’s warm-up; before it nothing is judged', () => {
    const mode: SoakMode = {
      mode: 'cluster',
      label: 'cluster',
      processes: { p: 'serve edge' },
      // RSS climbs with garbage until the first major GC at 60k, then stays flat.
      samples: samples(
        20,
        5000,
        (x, i) => (x < 60_000 ? 150 + x / 1000 : 200 + jitter(i)),
        (x, i) => (x < 60_000 ? null : 60 + jitter(i) / 2),
      ),
      warmupRequests: 20_000,
      requestsPerSecond: 1000,
      errors: 0,
    };
    assert.equal(warmupOf(mode, 'p'), 60_000);
    const [t] = analyse(figures(mode));
    assert.equal(t?.flat, true, JSON.stringify(t));
    const md = renderSoakMarkdown(figures(mode), 'x.svg');
    assert.match(md, /\*\*Verdict: flat\*\*/);
    // The window starts at the first GC: ~200 MB, not the ~170 MB of the garbage-filled warm-up.
    assert.match(md, /\| p \(serve edge\) \| (19[89]|20[01])\.\d → (19[89]|20[01])\.\d \|/);
  });

  test('RSS rising while the heap after GC stays flat is reported as such, not called flat', () => {
    const mode: SoakMode = {
      mode: 'cluster',
      label: 'cluster',
      processes: { p: 'serve audit' },
      // The allocator's high-water mark steps up by 15 MB; the live heap does not move.
      samples: samples(
        20,
        5000,
        (x, i) => (x < 50_000 ? 120 : 135) + jitter(i) / 2,
        (_x, i) => 36 + jitter(i) / 4,
      ),
      warmupRequests: 20_000,
      requestsPerSecond: 1000,
      errors: 0,
      forcedGc: true,
    };
    const [t] = analyse(figures(mode));
    assert.equal(t?.verdict, 'rss-rising');
    assert.equal(t.flat, false);
    assert.equal(t.heapAfterGc?.flat, true);
    assert.match(renderSoakMarkdown(figures(mode), 'x.svg'), /\*\*Verdict: heap flat; RSS rising in cluster\/p\*\*/);
  });

  test('the report says GROWING and names the process; the chart has a line per process and panel', () => {
    const mode: SoakMode = {
      mode: 'embedded',
      label: 'embedded',
      processes: { p: 'all roles + sandbox' },
      samples: samples(
        20,
        5000,
        (x, i) => 180 + x * 0.0015 + jitter(i),
        (x, i) => 60 + x * 0.0015 + jitter(i),
      ),
      warmupRequests: 25_000,
      requestsPerSecond: 500,
      errors: 0,
      forcedGc: true,
    };
    const md = renderSoakMarkdown(figures(mode), 'x.svg');
    assert.match(md, /\*\*Verdict: GROWING\*\* — heap after GC growing in embedded\/p\./);
    assert.match(md, /\| \*\*growing\*\* \|$/m);
    assert.match(md, /a full GC was forced/);
    const svg = renderSoakSvg(figures(mode));
    assert.equal([...svg.matchAll(/<polyline /g)].length, 2, 'RSS and heap-after-GC lines');
    assert.match(svg, /^<svg [^>]*viewBox/);
    assert.ok(svg.trimEnd().endsWith('</svg>'));
  });
});
