/**
 * The soak benchmark's analysis and report (bench/soak.bench.ts): per process, the slope of RSS
 * and of heap-after-GC over requests served once warmed up, a verdict, and the Markdown and SVG
 * (in bench-report.ts's style). Pure functions of the samples, so they are unit-tested.
 */

/** One sample of every process of a mode, taken between load segments. */
export interface SoakSample {
  /** Requests served so far in this mode (wrk's count). */
  readonly requests: number;
  /** Seconds since the mode's load started. */
  readonly seconds: number;
  /** Resident set (MB, from /proc/<pid>/status VmRSS) by process name. */
  readonly rssMb: Readonly<Record<string, number>>;
  /** `nodejs_heap_used_after_gc_bytes` in MB by process name; null before the first major GC. */
  readonly heapAfterGcMb: Readonly<Record<string, number | null>>;
}

/** One mode's run. */
export interface SoakMode {
  readonly mode: 'embedded' | 'cluster';
  readonly label: string;
  /** What each sampled process is, by name. */
  readonly processes: Readonly<Record<string, string>>;
  readonly samples: readonly SoakSample[];
  /** Requests before this are warm-up, left out of the slope. */
  readonly warmupRequests: number;
  readonly requestsPerSecond: number;
  /** Socket errors and non-2xx answers over the whole run. */
  readonly errors: number;
  /** A full GC was forced in every process before each sample (absent in runs before that option). */
  readonly forcedGc?: boolean;
}

/** What the bench writes (bench/results/soak-<date>.json). */
export interface SoakFigures {
  readonly date: string;
  readonly commit: string;
  readonly node: string;
  readonly cpus: number;
  readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] };
  readonly connections: number;
  /** The request mix, one path (and Accept) per entry, cycled. */
  readonly requestMix: readonly string[];
  readonly modes: readonly SoakMode[];
  /** Free text shown under the title (BENCH_SOAK_NOTE), e.g. what build this run measured. */
  readonly note?: string;
}

/** A least-squares line through the post-warm-up samples of one series. */
export interface SeriesTrend {
  /** MB per 100k requests. */
  readonly slopePer100k: number;
  /** What the slope adds up to across the post-warm-up window (MB). */
  readonly riseMb: number;
  /** Twice the residuals' standard deviation (MB): the scatter a trend must exceed to count. */
  readonly noiseMb: number;
  /** First and last value after warm-up (MB). */
  readonly fromMb: number;
  readonly toMb: number;
  readonly points: number;
  /** Flat: the rise across the window is within the noise (and the floor). */
  readonly flat: boolean;
}

/** A rise smaller than this is flat however quiet the series is (allocator and JIT jitter). */
export const FLAT_FLOOR_MB = 2;

/** The trend of `points` (x = requests, y = MB) from `warmup` requests on; undefined with fewer than 3 points. */
export function trend(points: readonly { x: number; y: number }[], warmup: number): SeriesTrend | undefined {
  const p = points.filter((q) => q.x >= warmup && Number.isFinite(q.y));
  if (p.length < 3) return undefined;
  const n = p.length;
  const mx = p.reduce((s, q) => s + q.x, 0) / n;
  const my = p.reduce((s, q) => s + q.y, 0) / n;
  const sxx = p.reduce((s, q) => s + (q.x - mx) ** 2, 0);
  const slope = sxx === 0 ? 0 : p.reduce((s, q) => s + (q.x - mx) * (q.y - my), 0) / sxx;
  const residuals = p.map((q) => q.y - (my + slope * (q.x - mx)));
  const sd = Math.sqrt(residuals.reduce((s, r) => s + r * r, 0) / Math.max(1, n - 2));
  const span = p[n - 1]!.x - p[0]!.x;
  const riseMb = slope * span;
  const noiseMb = 2 * sd;
  return {
    slopePer100k: slope * 100_000,
    riseMb,
    noiseMb,
    fromMb: p[0]!.y,
    toMb: p[n - 1]!.y,
    points: n,
    flat: Math.abs(riseMb) <= Math.max(noiseMb, FLAT_FLOOR_MB),
  };
}

/**
 * A process's verdict. `rss-rising`: RSS rose beyond its noise while the heap after GC stayed flat
 * — off-heap memory (Buffers) or the allocator's high-water mark; a short soak cannot tell a slow
 * off-heap leak from a plateau it has not reached yet, so it is reported, not called flat.
 */
export const Verdict = { Flat: 'flat', Growing: 'growing', RssRising: 'rss-rising' } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** The two series of one process. */
export interface ProcessTrend {
  readonly mode: SoakMode['mode'];
  readonly process: string;
  readonly what: string;
  readonly rss: SeriesTrend | undefined;
  readonly heapAfterGc: SeriesTrend | undefined;
  /** Undefined when neither series could be fitted. */
  readonly verdict: Verdict | undefined;
  /** Flat when every series it has is flat; undefined when none could be fitted. */
  readonly flat: boolean | undefined;
}

function verdictOf(rss: SeriesTrend | undefined, heap: SeriesTrend | undefined): Verdict | undefined {
  if (heap !== undefined && !heap.flat) return Verdict.Growing;
  if (rss !== undefined && !rss.flat) return heap === undefined ? Verdict.Growing : Verdict.RssRising;
  return rss === undefined && heap === undefined ? undefined : Verdict.Flat;
}

/**
 * Where a process's warm-up ends: the mode's warm-up, or its first major GC if that came later —
 * before it the heap holds every promoted object ever allocated, garbage included, and RSS with it.
 */
export function warmupOf(m: SoakMode, name: string): number {
  const firstGc = m.samples.find((s) => (s.heapAfterGcMb[name] ?? null) !== null)?.requests ?? Infinity;
  return Math.max(m.warmupRequests, firstGc);
}

/** Every process's trends, mode by mode. */
export function analyse(f: SoakFigures): ProcessTrend[] {
  const out: ProcessTrend[] = [];
  for (const m of f.modes) {
    for (const [name, what] of Object.entries(m.processes)) {
      const warmup = warmupOf(m, name);
      const rss = trend(
        m.samples.map((s) => ({ x: s.requests, y: s.rssMb[name] ?? NaN })),
        warmup,
      );
      const heap = trend(
        m.samples.map((s) => ({ x: s.requests, y: s.heapAfterGcMb[name] ?? NaN })),
        warmup,
      );
      const verdict = verdictOf(rss, heap);
      out.push({ mode: m.mode, process: name, what, rss, heapAfterGc: heap, verdict, flat: verdict === undefined ? undefined : verdict === Verdict.Flat });
    }
  }
  return out;
}

const mb = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');
const signedMb = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(1)}` : '–');
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function trendCell(t: SeriesTrend | undefined): string {
  if (t === undefined) return 'n/a | – | –';
  return `${mb(t.fromMb)} → ${mb(t.toMb)} | ${signedMb(t.slopePer100k)} | ±${mb(t.noiseMb)}`;
}

/** The Markdown report. */
export function renderSoakMarkdown(f: SoakFigures, svgFile: string): string {
  const trends = analyse(f);
  const named = (v: Verdict): string =>
    trends
      .filter((t) => t.verdict === v)
      .map((t) => `${t.mode}/${t.process}`)
      .join(', ');
  const growing = named(Verdict.Growing);
  const rssRising = named(Verdict.RssRising);
  const judged = trends.some((t) => t.verdict !== undefined);
  const overall =
    growing !== ''
      ? `**Verdict: GROWING** — heap after GC growing in ${growing}${rssRising === '' ? '' : `; RSS rising (heap flat) in ${rssRising}`}.`
      : rssRising !== ''
        ? `**Verdict: heap flat; RSS rising in ${rssRising}** — the live heap after GC stays within noise in every process once warmed up; the RSS of ${rssRising} rose beyond its noise while its heap did not (off-heap memory or the allocator's high-water mark — soak longer to tell a plateau from a slow off-heap leak).`
        : judged
          ? '**Verdict: flat** — every process’s RSS and heap after GC stay within noise once warmed up.'
          : '**Verdict: n/a** — too few samples after warm-up.';
  const lines: string[] = [`# Soak: memory over requests served, ${f.date}`, ''];
  if (f.note !== undefined) lines.push(`> ${f.note}`, '');
  lines.push(
    `Commit \`${f.commit}\`, Node ${f.node}, ${f.cpus} CPUs (shared: load average ${f.loadAverage.start.join(' / ')} at the start, ${f.loadAverage.end.join(' / ')} at the end). wrk with ${f.connections} keep-alive connections, a kubectl-like mix of GETs and LISTs through \`/k8s/sandbox/…\`, cycled: ${f.requestMix.map((p) => `\`${p}\``).join(', ')}.`,
    '',
    `![RSS and heap after GC over requests served](${svgFile})`,
    '',
    overall,
    '',
    `Slope: least squares over the samples after warm-up (the first quarter of the requests, or until the process's first major GC if later), in MB per 100k requests. Flat when what the slope adds up to across that window is within the noise (twice the residuals' standard deviation, at least ${FLAT_FLOOR_MB} MB). Heap after GC is \`nodejs_heap_used_after_gc_bytes\` from each process's \`/metrics\` (the live set after the latest major GC${f.modes.some((m) => m.forcedGc === true) ? "; before each sample a full GC was forced through the process's inspector, so it is the live set at that moment" : ''}); RSS is \`/proc/<pid>/status\` VmRSS, read after it.`,
    '',
  );
  for (const m of f.modes) {
    const last = m.samples.at(-1);
    lines.push(
      `## ${m.label}`,
      '',
      `${(last?.requests ?? 0).toLocaleString('en-US')} requests in ${Math.round(last?.seconds ?? 0)} s (${Math.round(m.requestsPerSecond).toLocaleString('en-US')} req/s under load), ${m.errors} errors, ${m.samples.length} samples; warm-up: the first ${m.warmupRequests.toLocaleString('en-US')} requests.`,
      '',
      '| process | RSS after warm-up, MB | RSS slope, MB/100k req | RSS noise, MB | heap after GC, MB | heap slope, MB/100k req | heap noise, MB | verdict |',
      '| --- | --- | ---: | ---: | --- | ---: | ---: | --- |',
    );
    for (const t of trends.filter((x) => x.mode === m.mode)) {
      const verdict =
        t.verdict === undefined ? 'n/a' : t.verdict === Verdict.Flat ? 'flat' : t.verdict === Verdict.Growing ? '**growing**' : 'RSS rising, heap flat';
      lines.push(`| ${t.process} (${t.what}) | ${trendCell(t.rss)} | ${trendCell(t.heapAfterGc)} | ${verdict} |`);
    }
    lines.push('');
  }
  lines.push(
    'Reproduce: `npm run bench:soak` (env: `BENCH_SOAK_SECONDS` per mode, or `BENCH_SOAK_REQUESTS` to soak for a request count; `BENCH_SOAK_MODES`, `BENCH_SOAK_CONNECTIONS`, `BENCH_SOAK_WARMUP`, `BENCH_SOAK_FORCE_GC`; see bench/soak.bench.ts).',
    '',
  );
  return lines.join('\n');
}

const PROCESS_COLORS: Record<string, string> = { embedded: '#ff7f0e', edge: '#d62728', policy: '#1f77b4', audit: '#2ca02c', sandbox: '#9467bd' };
const FALLBACK_COLORS = ['#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** The chart: RSS (top) and heap after GC (bottom) over requests served, one line per process and mode. */
export function renderSoakSvg(f: SoakFigures): string {
  const W = 980;
  const left = 70;
  const right = 250;
  const plotW = W - left - right;
  const top1 = 80;
  const h = 220;
  const top2 = top1 + h + 70;
  const H = top2 + h + 60;
  const series: { key: string; label: string; color: string; dash: string; mode: SoakMode; name: string }[] = [];
  let fallback = 0;
  for (const m of f.modes) {
    for (const [name, what] of Object.entries(m.processes)) {
      const color = PROCESS_COLORS[m.mode === 'embedded' ? 'embedded' : name] ?? FALLBACK_COLORS[fallback++ % FALLBACK_COLORS.length]!;
      series.push({ key: `${m.mode}/${name}`, label: `${m.mode}: ${name} (${what})`, color, dash: m.mode === 'cluster' ? '6 3' : '', mode: m, name });
    }
  }
  const maxX = Math.max(1, ...f.modes.flatMap((m) => m.samples.map((s) => s.requests)));
  const trends = new Map(analyse(f).map((t) => [`${t.mode}/${t.process}`, t]));
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">Portcullis soak — memory over requests served, ${esc(f.date)} (${f.connections} connections, kubectl-like GET/LIST mix)</text>`,
  ];
  if (f.note !== undefined) out.push(`<text x="${left}" y="42" fill="#555">${esc(f.note.length > 140 ? `${f.note.slice(0, 137)}…` : f.note)}</text>`);
  const panel = (
    top: number,
    title: string,
    value: (s: SoakSample, name: string) => number | null | undefined,
    pick: (t: ProcessTrend) => SeriesTrend | undefined,
  ): void => {
    const values = series
      .flatMap((se) => se.mode.samples.map((s) => value(s, se.name)))
      .filter((v): v is number => v !== null && v !== undefined && Number.isFinite(v));
    const maxY = niceCeil(Math.max(1, ...values));
    const x = (v: number): number => left + (v / maxX) * plotW;
    const y = (v: number): number => top + h - (v / maxY) * h;
    out.push(`<text x="${left}" y="${top - 8}" font-weight="bold">${esc(title)}</text>`);
    for (let i = 0; i <= 4; i++) {
      const v = (maxY * i) / 4;
      out.push(
        `<line x1="${left}" y1="${y(v).toFixed(1)}" x2="${left + plotW}" y2="${y(v).toFixed(1)}" stroke="#ddd"/><text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${Math.round(v)}</text>`,
      );
    }
    for (let i = 0; i <= 5; i++) {
      const v = (maxX * i) / 5;
      out.push(`<text x="${x(v).toFixed(1)}" y="${top + h + 16}" text-anchor="middle">${Math.round(v / 1000)}k</text>`);
    }
    out.push(
      `<line x1="${left}" y1="${top + h}" x2="${left + plotW}" y2="${top + h}" stroke="#333"/><line x1="${left}" y1="${top}" x2="${left}" y2="${top + h}" stroke="#333"/>`,
    );
    for (const m of f.modes) {
      out.push(
        `<line x1="${x(m.warmupRequests).toFixed(1)}" y1="${top}" x2="${x(m.warmupRequests).toFixed(1)}" y2="${top + h}" stroke="#aaa" stroke-dasharray="2 3"><title>${esc(m.label)}: end of warm-up</title></line>`,
      );
    }
    for (const se of series) {
      const pts = se.mode.samples
        .map((s) => [s.requests, value(s, se.name)] as const)
        .filter((p): p is readonly [number, number] => p[1] !== null && p[1] !== undefined && Number.isFinite(p[1]));
      if (pts.length === 0) continue;
      const t = trends.get(se.key);
      const st = t === undefined ? undefined : pick(t);
      const tip = `${se.label}: ${st === undefined ? 'no trend' : `${signedMb(st.slopePer100k)} MB/100k requests after warm-up, ${st.flat ? 'flat' : 'growing'}`}`;
      out.push(
        `<polyline fill="none" stroke="${se.color}" stroke-width="2"${se.dash === '' ? '' : ` stroke-dasharray="${se.dash}"`} points="${pts.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ')}"><title>${esc(tip)}</title></polyline>`,
      );
    }
    out.push(`<text x="${left + plotW / 2}" y="${top + h + 32}" text-anchor="middle" fill="#555">requests served (dotted line: end of warm-up)</text>`);
  };
  panel(
    top1,
    'RSS, MB (/proc/<pid>/status VmRSS)',
    (s, n) => s.rssMb[n],
    (t) => t.rss,
  );
  panel(
    top2,
    'heap used after the latest major GC, MB (nodejs_heap_used_after_gc_bytes)',
    (s, n) => s.heapAfterGcMb[n],
    (t) => t.heapAfterGc,
  );
  // Legend with each line's slopes.
  series.forEach((se, i) => {
    const ly = top1 + i * 38;
    const t = trends.get(se.key);
    out.push(
      `<line x1="${W - right + 20}" y1="${ly + 5}" x2="${W - right + 44}" y2="${ly + 5}" stroke="${se.color}" stroke-width="2"${se.dash === '' ? '' : ` stroke-dasharray="${se.dash}"`}/>`,
    );
    out.push(`<text x="${W - right + 50}" y="${ly + 9}">${esc(`${se.mode.mode}: ${se.name}`)}</text>`);
    const slope = (st: SeriesTrend | undefined): string => (st === undefined ? 'n/a' : `${signedMb(st.slopePer100k)}`);
    out.push(
      `<text x="${W - right + 50}" y="${ly + 24}" font-size="10" fill="#555">MB/100k: RSS ${slope(t?.rss)}, heap ${slope(t?.heapAfterGc)}${t?.verdict === undefined ? '' : ` — ${t.verdict === Verdict.RssRising ? 'RSS rising' : t.verdict}`}</text>`,
    );
  });
  out.push(
    `<text x="${left}" y="${H - 12}" fill="#555">commit ${esc(f.commit)}, Node ${esc(f.node)}, ${f.cpus} CPUs; solid: embedded (portcullis start, sandbox in-process); dashed: cluster (roles as processes on NATS + ClickHouse)</text>`,
  );
  out.push('</svg>', '');
  return out.join('\n');
}

function niceCeil(v: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
