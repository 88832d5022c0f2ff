/**
 * What a kubectl call pays for its credential, side by side in one run: the wall time of
 *   - `node -e 0` (a bare Node start: the yardstick),
 *   - `portcullis credential` with a warm cache (the exec plugin a kubeconfig from `portcullis
 *     kubeconfig` runs on every kubectl call),
 *   - `portcullis token --exec` (the old plugin: the whole CLI, a new token every call),
 * and of a real `kubectl version -o json` (the server's /version) through an embedded gateway (`portcullis start`)
 * with the plugin, with the old plugin, and with a static token in the kubeconfig (no plugin: the
 * floor). Every round runs each target once, in an order that rotates from round to round, and
 * the figures are medians over the rounds with their spread (min–max); the ratios are the median
 * of each round's own ratio, so a busy moment shared by a round cancels out.
 *
 * Target (issue 17): the credential costs a kubectl call at most 2× `node -e 0`.
 *
 * Run: `npm run bench:plugin` (BENCH_ROUNDS, default 15). Writes bench/results/credential-plugin-latest.md
 * and .json (every sample).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { freePort } from '../test/harness/services.js';
import { CLI, REPO_ROOT, runPortcullis, startPortcullis, tempDir, writeConfig } from '../test/support/portcullis-process.js';
import { reportFigures } from './bench-result.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 15);

interface Target {
  readonly name: string;
  readonly cmd: string;
  readonly args: readonly string[];
}

interface Kubeconfig {
  users: { name: string; user: { exec?: { command: string; args: string[] }; token?: string } }[];
}

function timeOnce(t: Target, env: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(t.cmd, [...t.args], { env, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${t.name} exited ${r.status}: ${r.stderr}`);
  return ms;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function main(): Promise<void> {
  const dir = tempDir('bench-plugin');
  const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'xdg-cache') };
  process.env['XDG_CACHE_HOME'] = env.XDG_CACHE_HOME;
  const config = writeConfig(dir, 'portcullis.yaml', {
    node: { stateDir: join(dir, 'state') },
    edge: { listen: { host: '127.0.0.1', port: await freePort() } },
    identity: {
      devIssuer: { enabled: true, tokenLifetime: '50m', clients: [{ id: 'ci-bot', secret: 'dev-secret-ci-bot', subject: 'ci-bot', groups: ['bots'] }] },
    },
    policy: { file: join(REPO_ROOT, 'examples', 'policy.yaml') },
    approval: { listen: { host: '127.0.0.1', port: await freePort() } },
  });
  const gateway = startPortcullis(['start', '--config', config]);
  try {
    await gateway.waitFor(/Stop with Ctrl-C/, 120_000);
    const kc = await runPortcullis(['kubeconfig', '--connection', 'sandbox', '--client', 'ci-bot', '--config', config]);
    if (kc.code !== 0) throw new Error(kc.stderr);
    const pluginKc = join(dir, 'plugin.kubeconfig');
    writeFileSync(pluginKc, kc.stdout);
    const parsed = parseYaml(kc.stdout) as Kubeconfig;
    const exec = parsed.users[0]!.user.exec!;
    // The old plugin, as kubeconfigs written before issue 17 run it.
    const oldArgs = [CLI, 'token', '--exec', '--client', 'ci-bot', '--config', config];
    parsed.users[0]!.user.exec = { ...exec, args: oldArgs };
    const oldKc = join(dir, 'old.kubeconfig');
    writeFileSync(oldKc, stringify(parsed));
    const token = await runPortcullis(['token', '--client', 'ci-bot', '--config', config]);
    if (token.code !== 0) throw new Error(token.stderr);
    delete parsed.users[0]!.user.exec;
    parsed.users[0]!.user.token = token.stdout.trim();
    const staticKc = join(dir, 'static.kubeconfig');
    writeFileSync(staticKc, stringify(parsed));

    const kube = (kubeconfig: string): string[] => ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kube-cache'), 'version', '-o', 'json'];
    const targets: Target[] = [
      { name: 'node -e 0', cmd: process.execPath, args: ['-e', '0'] },
      { name: 'plugin, warm cache', cmd: exec.command, args: exec.args },
      { name: 'old: portcullis token --exec', cmd: process.execPath, args: oldArgs },
      { name: 'kubectl, static token', cmd: 'kubectl', args: kube(staticKc) },
      { name: 'kubectl + plugin', cmd: 'kubectl', args: kube(pluginKc) },
      { name: 'kubectl + old plugin', cmd: 'kubectl', args: kube(oldKc) },
    ];
    // Warm-up: fills the plugin's cache and the OS page cache; not measured.
    for (const t of targets) timeOnce(t, env);

    const samples = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    const loads: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      loads.push(loadavg()[0]!);
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(round + i) % targets.length]!;
        samples.get(t.name)!.push(timeOnce(t, env));
      }
      process.stdout.write(`round ${round + 1}/${ROUNDS}: ${targets.map((t) => `${t.name} ${samples.get(t.name)!.at(-1)!.toFixed(0)} ms`).join(', ')}\n`);
    }
    report(targets, samples, loads);
  } finally {
    await gateway.stop();
  }
}

function report(targets: readonly Target[], samples: Map<string, number[]>, loads: number[]): void {
  const s = (name: string): number[] => samples.get(name)!;
  const perRound = (f: (i: number) => number): number => median(s('node -e 0').map((_, i) => f(i)));
  const node = s('node -e 0');
  const ratios = {
    pluginOverNode: perRound((i) => s('plugin, warm cache')[i]! / node[i]!),
    oldOverNode: perRound((i) => s('old: portcullis token --exec')[i]! / node[i]!),
    // A whole kubectl call through the gateway, in node starts.
    kubectlPluginOverNode: perRound((i) => s('kubectl + plugin')[i]! / node[i]!),
    kubectlOldOverNode: perRound((i) => s('kubectl + old plugin')[i]! / node[i]!),
    // What the credential adds to a kubectl call, in node starts.
    kubectlPluginExtraOverNode: perRound((i) => (s('kubectl + plugin')[i]! - s('kubectl, static token')[i]!) / node[i]!),
    kubectlOldExtraOverNode: perRound((i) => (s('kubectl + old plugin')[i]! - s('kubectl, static token')[i]!) / node[i]!),
  };
  const rows = targets.map((t) => {
    const xs = s(t.name);
    return { name: t.name, medianMs: median(xs), minMs: Math.min(...xs), maxMs: Math.max(...xs) };
  });
  const date = new Date().toISOString();
  const lines = [
    `# Credential plugin bench (${date})`,
    '',
    `${ROUNDS} rounds, each target once per round in a rotating order; wall time of the whole process, in ms. Load average (1 min) over the run: ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}; node ${process.version}; 2-core VM shared with other work.`,
    '',
    '| target | median ms | min–max ms |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| ${r.name} | ${r.medianMs.toFixed(0)} | ${r.minMs.toFixed(0)}–${r.maxMs.toFixed(0)} |`),
    '',
    "Ratios (median over rounds of each round's ratio):",
    '',
    `- plugin (warm cache) / node -e 0: **${ratios.pluginOverNode.toFixed(2)}×** (target ≤ 2×)`,
    `- old \`portcullis token --exec\` / node -e 0: ${ratios.oldOverNode.toFixed(2)}×`,
    `- a whole kubectl call through the gateway / node -e 0: with the plugin ${ratios.kubectlPluginOverNode.toFixed(2)}×, with the old plugin ${ratios.kubectlOldOverNode.toFixed(2)}×`,
    `- what the credential adds to a kubectl call (kubectl + plugin − kubectl with a static token) / node -e 0: ${ratios.kubectlPluginExtraOverNode.toFixed(2)}× (old plugin: ${ratios.kubectlOldExtraOverNode.toFixed(2)}×)`,
    '',
  ];
  const text = lines.join('\n');
  process.stdout.write(`\n${text}`);
  const out = resolve(REPO_ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'credential-plugin-latest.md'), text);
  writeFileSync(
    join(out, 'credential-plugin-latest.json'),
    `${JSON.stringify({ date, rounds: ROUNDS, loads, rows, ratios, samples: Object.fromEntries(samples) }, null, 1)}\n`,
  );
  reportFigures('credential-plugin', { rows, ratios });
}

await main();
