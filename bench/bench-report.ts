/**
 * Renders one `npm run bench` result set as Markdown (tables, ratios, targets met or missed) and
 * as a hand-written SVG chart (throughput and p50/p99 per scenario). Pure functions of the JSON.
 */

/** One proxy-compare cell: a target at a concurrency, medians over the rounds. */
export interface ProxyCell {
  readonly scenario: 'small' | 'list';
  readonly concurrency: number;
  readonly target: string;
  readonly label: string;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly errors: number;
  /** Median CPU time per request (µs) of each process taking part, by role (absent in older results). */
  readonly cpuUsPerRequest?: Readonly<Record<string, number>>;
  /** Cluster-mode edge: its mean waits per request (ms) from its own histograms. */
  readonly edgeWaitsMs?: { readonly decision: number; readonly auditAck: number; readonly upstream: number };
}

/** What proxy-compare reports. */
export interface ProxyFigures {
  readonly rounds: number;
  readonly secondsPerRun: number;
  readonly listConcurrency: number;
  readonly loadAverage: { min: number; median: number; max: number };
  readonly cells: readonly ProxyCell[];
  readonly stream?: { mb: number; seconds: number; baselineMb: number; peakGrowthMb: number; targetMb: number };
}

/** The whole result file. */
export interface BenchResults {
  readonly date: string;
  readonly commit: string;
  readonly node: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly loadAverage: { start: number[]; end: number[] };
  readonly parts: Record<string, Record<string, unknown>>;
  readonly failed: string[];
}

const TARGET_ORDER = ['direct', 'nginx', 'node', 'embedded', 'cluster', 'embeddedBase', 'clusterBase'] as const;
const COLORS: Record<string, string> = {
  direct: '#7f7f7f',
  nginx: '#2ca02c',
  node: '#1f77b4',
  embedded: '#ff7f0e',
  cluster: '#d62728',
  embeddedBase: '#ffbb78',
  clusterBase: '#ff9896',
};

const num = (x: number, digits = 0): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–';
const ms = (x: number): string => (Number.isFinite(x) ? (x < 10 ? x.toFixed(2) : x.toFixed(1)) : '–');
const pct = (x: number): string => (Number.isFinite(x) ? `${Math.round(x * 100)} %` : '–');
const signed = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${ms(x)}` : '–');

function cellsOf(p: ProxyFigures, scenario: ProxyCell['scenario'], concurrency: number): Map<string, ProxyCell> {
  return new Map(p.cells.filter((c) => c.scenario === scenario && c.concurrency === concurrency).map((c) => [c.target, c]));
}

/** The issue's targets, each met or missed by how much. */
export function targetChecks(p: ProxyFigures): { what: string; target: string; measured: string; met: boolean | undefined }[] {
  const c1 = cellsOf(p, 'small', 1);
  const c64 = cellsOf(p, 'small', 64);
  const out: { what: string; target: string; measured: string; met: boolean | undefined }[] = [];
  const d1 = c1.get('direct');
  const e1 = c1.get('cluster');
  if (d1 && e1) {
    const p50 = e1.p50Ms - d1.p50Ms;
    const p99 = e1.p99Ms - d1.p99Ms;
    out.push({ what: 'added latency at 1 connection, p50 (cluster mode)', target: '≤ 0.5 ms', measured: `${signed(p50)} ms`, met: p50 <= 0.5 });
    out.push({ what: 'added latency at 1 connection, p99 (cluster mode)', target: '≤ 1.5 ms', measured: `${signed(p99)} ms`, met: p99 <= 1.5 });
  }
  const n64 = c64.get('node');
  const e64 = c64.get('cluster');
  const g64 = c64.get('nginx');
  if (n64 && e64)
    out.push({
      what: 'throughput at 64 connections vs bare Node (cluster mode)',
      target: '≥ 60 %',
      measured: pct(e64.rps / n64.rps),
      met: e64.rps / n64.rps >= 0.6,
    });
  if (g64 && e64)
    out.push({ what: 'throughput at 64 connections vs nginx (cluster mode)', target: 'report', measured: pct(e64.rps / g64.rps), met: undefined });
  if (p.stream)
    out.push({
      what: 'edge RSS growth streaming 200 MB (cluster mode)',
      target: `< ${p.stream.targetMb} MB`,
      measured: `${p.stream.peakGrowthMb.toFixed(1)} MB`,
      met: p.stream.peakGrowthMb < p.stream.targetMb,
    });
  return out;
}

function proxyMarkdown(p: ProxyFigures): string[] {
  const lines: string[] = [];
  lines.push(`## Proxy comparison (same static HTTPS upstream, wrk in its own process)`, '');
  lines.push(
    `${p.rounds} interleaved rounds × ${p.secondsPerRun} s per run; medians over the rounds. Load average during the runs: ${p.loadAverage.min}–${p.loadAverage.max} (median ${p.loadAverage.median}).`,
    '',
  );
  lines.push('### Targets', '', '| target | goal | measured | |', '| --- | --- | --- | --- |');
  for (const t of targetChecks(p)) lines.push(`| ${t.what} | ${t.target} | ${t.measured} | ${t.met === undefined ? '' : t.met ? 'met' : '**missed**'} |`);
  lines.push('');
  const concurrencies = [...new Set(p.cells.filter((c) => c.scenario === 'small').map((c) => c.concurrency))].sort((a, b) => a - b);
  const table = (title: string, scenario: ProxyCell['scenario'], conc: number): void => {
    const cells = cellsOf(p, scenario, conc);
    const direct = cells.get('direct');
    const nginx = cells.get('nginx');
    const node = cells.get('node');
    lines.push(`### ${title}`, '');
    lines.push('| target | req/s | p50 ms | p99 ms | p99.9 ms | added p50 / p99 ms | ×direct | ×nginx | ×bare Node | errors |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const t of TARGET_ORDER) {
      const c = cells.get(t);
      if (!c) continue;
      const added = direct ? `${signed(c.p50Ms - direct.p50Ms)} / ${signed(c.p99Ms - direct.p99Ms)}` : '–';
      lines.push(
        `| ${c.label} | ${num(c.rps)} | ${ms(c.p50Ms)} | ${ms(c.p99Ms)} | ${ms(c.p999Ms)} | ${added} | ${direct ? pct(c.rps / direct.rps) : '–'} | ${nginx ? pct(c.rps / nginx.rps) : '–'} | ${node ? pct(c.rps / node.rps) : '–'} | ${c.errors} |`,
      );
    }
    lines.push('');
    const w = cells.get('cluster')?.edgeWaitsMs;
    if (w) {
      lines.push(
        `Inside the cluster-mode edge, mean per request (its own histograms): policy decision ${ms(w.decision)} ms, waiting for the audit ack ${ms(w.auditAck)} ms, upstream to response headers ${ms(w.upstream)} ms.`,
        '',
      );
    }
  };
  for (const c of concurrencies) table(`Small GET (~400-byte ConfigMap), ${c} connection${c === 1 ? '' : 's'}`, 'small', c);
  lines.push(...cpuTable(p, 'small', Math.max(...concurrencies)));
  table(`1 MB SecretList, ${p.listConcurrency} connections (masked by the edges; the reference targets pass it through)`, 'list', p.listConcurrency);
  if (p.stream) {
    lines.push(
      `**Streaming**: a 200 MB list without a length through the cluster-mode edge: ${p.stream.mb.toFixed(0)} MB in ${p.stream.seconds.toFixed(1)} s (${(p.stream.mb / p.stream.seconds).toFixed(0)} MB/s); edge RSS ${p.stream.baselineMb.toFixed(0)} MB before, peak growth **${p.stream.peakGrowthMb.toFixed(1)} MB** (target < ${p.stream.targetMb} MB).`,
      '',
    );
  }
  return lines;
}

/**
 * Where the CPU goes: per-request CPU time of every process a target needs (from /proc, so it
 * holds on a busy machine where throughput does not), and the throughput the two cores would
 * allow if nothing else ran (capacity = cores ÷ total CPU per request, load generator excluded).
 */
function cpuTable(p: ProxyFigures, scenario: ProxyCell['scenario'], conc: number): string[] {
  const cells = [...cellsOf(p, scenario, conc).values()].filter((c) => c.cpuUsPerRequest !== undefined);
  if (cells.length === 0) return [];
  const roles = [...new Set(cells.flatMap((c) => Object.keys(c.cpuUsPerRequest!)))].filter((r) => r !== 'wrk');
  const lines = [`### CPU per request, small GET at ${conc} connections (µs, median of the rounds; from /proc)`, ''];
  lines.push(`| target | ${roles.join(' | ')} | total without wrk | capacity on 2 cores | wrk |`);
  lines.push(`| --- | ${roles.map(() => '---:').join(' | ')} | ---: | ---: | ---: |`);
  for (const t of TARGET_ORDER) {
    const c = cells.find((x) => x.target === t);
    if (!c) continue;
    const cpu = c.cpuUsPerRequest!;
    const total = roles.reduce((n, r) => n + (cpu[r] ?? 0), 0);
    lines.push(
      `| ${c.label} | ${roles.map((r) => (cpu[r] === undefined ? '' : num(cpu[r]))).join(' | ')} | ${num(total)} | ${num(2e6 / total)} req/s | ${num(cpu['wrk'] ?? NaN)} |`,
    );
  }
  lines.push('');
  return lines;
}

function otherMarkdown(parts: BenchResults['parts']): string[] {
  const lines: string[] = ['## Components', ''];
  const f = (part: string, key: string): number => Number(parts[part]?.[key]);
  lines.push('| measure | result |', '| --- | --- |');
  if (parts['policy-engine'])
    lines.push(`| policy engine, in process (${f('policy-engine', 'rules')} rules) | ${num(f('policy-engine', 'decisionsPerSecond'))} decisions/s |`);
  const rt = parts['policy-roundtrip']?.['rows'] as
    { cache: string; concurrency: number; p50Ms: number; p99Ms: number; decisionsPerSecond: number }[] | undefined;
  for (const r of rt ?? [])
    lines.push(
      `| decision round trip over NATS, cache ${r.cache}, concurrency ${r.concurrency} | p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, ${num(r.decisionsPerSecond)} decisions/s |`,
    );
  if (parts['audit-ingest']) {
    lines.push(
      `| audit ingestion: JetStream → two writers → ClickHouse, one event per message | ${num(f('audit-ingest', 'storedPerSecond'))} events/s stored (goal ≥ 50,000); appended ${num(f('audit-ingest', 'appendedPerSecond'))} events/s acked; writers ${num(f('audit-ingest', 'writerCpuUsPerEvent'))} µs CPU/event |`,
    );
    lines.push(
      `| … group-committed EventBatch messages of ${num(f('audit-ingest', 'group'))} events (what edges publish) | ${num(f('audit-ingest', 'batched_storedPerSecond'))} events/s stored; writers ${num(f('audit-ingest', 'batched_writerCpuUsPerEvent'))} µs CPU/event; lag p99 ${num(f('audit-ingest', 'batched_lagP99Ms'))} ms at ${num(f('audit-ingest', 'batched_lagOfferedPerSecond'))} events/s |`,
    );
    lines.push(
      `| audit lag, publish → queryable, at ${num(f('audit-ingest', 'lagOfferedPerSecond'))} events/s | p50 ${num(f('audit-ingest', 'lagP50Ms'))} ms, p99 ${num(f('audit-ingest', 'lagP99Ms'))} ms (goal p99 < 2000 ms) |`,
    );
  }
  if (parts['approval-release'])
    lines.push(
      `| approval release: approve click → held request at the upstream | p50 ${ms(f('approval-release', 'p50Ms'))} ms, p99 ${ms(f('approval-release', 'p99Ms'))} ms (goal p99 < 100 ms) |`,
    );
  for (const kind of ['secret', 'pod']) {
    const k = `masker-${kind}`;
    if (parts[k])
      lines.push(
        `| masker, ${num(f(k, 'mb'))} MB ${kind === 'secret' ? 'SecretList' : 'PodList'} | ${num(f(k, 'maskerMBps'))} MB/s (JSON.parse + stringify: ${num(f(k, 'referenceMBps'))} MB/s) |`,
      );
  }
  if (parts['masking-edge'])
    lines.push(
      `| masking a ${f('masking-edge', 'bodyMB').toFixed(2)} MB SecretList at the edge (in process) | +${ms(f('masking-edge', 'addedMs'))} ms (median ${ms(f('masking-edge', 'maskedMedianMs'))} vs ${ms(f('masking-edge', 'plainMedianMs'))} ms) |`,
    );
  if (parts['masker-rss'])
    lines.push(`| masker RSS growth over a ${num(f('masker-rss', 'inputMiB'))} MiB SecretList | ${num(f('masker-rss', 'growthMiB'))} MiB |`);
  lines.push('');
  return lines;
}

/** The Markdown report. */
export function renderMarkdown(r: BenchResults, svgFile: string): string {
  const lines: string[] = [
    `# Portcullis benchmarks, ${r.date}`,
    '',
    `Commit \`${r.commit}\`, Node ${r.node}, ${r.cpus} × ${r.cpuModel}. Load average (1/5/15 min) at the start ${r.loadAverage.start.join(' / ')}, at the end ${r.loadAverage.end.join(' / ')}: the machine is shared, so read ratios and medians, not absolute figures.`,
    '',
    `![latency and throughput per scenario](${svgFile})`,
    '',
  ];
  if (r.failed.length > 0) lines.push(`**Parts that failed:** ${r.failed.join(', ')} (see the JSON's logs).`, '');
  const proxy = r.parts['proxy-compare'] as unknown as ProxyFigures | undefined;
  if (proxy) lines.push(...proxyMarkdown(proxy));
  lines.push(...otherMarkdown(r.parts));
  lines.push('Reproduce: `npm run bench` (all parts) or `npm run bench -- --only proxy-compare`.', '');
  return lines.join('\n');
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** The chart: per scenario, throughput bars (top) and p50 bars with p99 ticks on a log scale (bottom). */
export function renderSvg(r: BenchResults): string {
  const p = r.parts['proxy-compare'] as unknown as ProxyFigures | undefined;
  if (!p) return '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25">no proxy comparison in this run</text></svg>\n';
  const groups: { title: string; cells: Map<string, ProxyCell> }[] = [];
  for (const c of [...new Set(p.cells.filter((x) => x.scenario === 'small').map((x) => x.concurrency))].sort((a, b) => a - b)) {
    groups.push({ title: `small GET, ${c} conn`, cells: cellsOf(p, 'small', c) });
  }
  groups.push({ title: `1 MB list, ${p.listConcurrency} conn`, cells: cellsOf(p, 'list', p.listConcurrency) });
  const W = 980;
  const left = 70;
  const groupW = (W - left - 20) / groups.length;
  const barW = Math.min(26, (groupW - 30) / TARGET_ORDER.length);
  const top1 = 60;
  const h1 = 200;
  const top2 = top1 + h1 + 70;
  const h2 = 220;
  const H = top2 + h2 + 60;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">Portcullis vs direct, nginx and a bare Node proxy — ${esc(r.date)} (medians of ${p.rounds} rounds, load avg ${p.loadAverage.median})</text>`,
  ];
  // Legend.
  TARGET_ORDER.forEach((t, i) => {
    const label = p.cells.find((c) => c.target === t)?.label ?? t;
    out.push(`<rect x="${left + i * 150}" y="36" width="12" height="12" fill="${COLORS[t]}"/><text x="${left + i * 150 + 16}" y="46">${esc(label)}</text>`);
  });
  // Throughput, each group on its own linear scale (the list's rates are far lower).
  out.push(`<text x="${left}" y="${top1 - 4}" font-weight="bold">throughput, requests/s (each group on its own scale)</text>`);
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + 15;
    const max = Math.max(...[...g.cells.values()].map((c) => c.rps), 1);
    out.push(`<line x1="${x0 - 5}" y1="${top1 + h1}" x2="${x0 + groupW - 25}" y2="${top1 + h1}" stroke="#333"/>`);
    TARGET_ORDER.forEach((t, i) => {
      const c = g.cells.get(t);
      if (!c) return;
      const h = (c.rps / max) * (h1 - 20);
      const x = x0 + i * (barW + 4);
      out.push(
        `<rect x="${x}" y="${(top1 + h1 - h).toFixed(1)}" width="${barW}" height="${h.toFixed(1)}" fill="${COLORS[t]}"><title>${esc(c.label)}: ${Math.round(c.rps)} req/s</title></rect>`,
      );
      out.push(
        `<text x="${x + barW / 2}" y="${(top1 + h1 - h - 3).toFixed(1)}" font-size="9" text-anchor="middle">${c.rps >= 1000 ? `${(c.rps / 1000).toFixed(1)}k` : Math.round(c.rps)}</text>`,
      );
    });
    out.push(`<text x="${x0 + (groupW - 30) / 2}" y="${top1 + h1 + 16}" text-anchor="middle">${esc(g.title)}</text>`);
  });
  // Latency on a shared log scale: bar to p50, tick at p99.
  const all = p.cells.flatMap((c) => [c.p50Ms, c.p99Ms]).filter((x) => x > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
  const y = (v: number): number => top2 + h2 - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * h2;
  out.push(`<text x="${left}" y="${top2 - 14}" font-weight="bold">latency, ms (log scale): bar = p50, black tick = p99</text>`);
  for (let v = lo; v <= hi * 1.0001; v *= 10) {
    out.push(
      `<line x1="${left - 5}" y1="${y(v).toFixed(1)}" x2="${W - 20}" y2="${y(v).toFixed(1)}" stroke="#ddd"/><text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v >= 1 ? v : v.toString()}</text>`,
    );
  }
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + 15;
    TARGET_ORDER.forEach((t, i) => {
      const c = g.cells.get(t);
      if (!c) return;
      const x = x0 + i * (barW + 4);
      out.push(
        `<rect x="${x}" y="${y(c.p50Ms).toFixed(1)}" width="${barW}" height="${(top2 + h2 - y(c.p50Ms)).toFixed(1)}" fill="${COLORS[t]}"><title>${esc(c.label)}: p50 ${ms(c.p50Ms)} ms, p99 ${ms(c.p99Ms)} ms</title></rect>`,
      );
      out.push(`<line x1="${x - 2}" y1="${y(c.p99Ms).toFixed(1)}" x2="${x + barW + 2}" y2="${y(c.p99Ms).toFixed(1)}" stroke="#000" stroke-width="2"/>`);
      out.push(`<line x1="${x + barW / 2}" y1="${y(c.p50Ms).toFixed(1)}" x2="${x + barW / 2}" y2="${y(c.p99Ms).toFixed(1)}" stroke="#000"/>`);
    });
    out.push(`<text x="${x0 + (groupW - 30) / 2}" y="${top2 + h2 + 16}" text-anchor="middle">${esc(g.title)}</text>`);
  });
  out.push(
    `<text x="${left}" y="${H - 12}" fill="#555">commit ${esc(r.commit)}, Node ${esc(r.node)}, ${r.cpus} CPUs; wrk in its own process; all targets in front of one static HTTPS upstream</text>`,
  );
  out.push('</svg>', '');
  return out.join('\n');
}
