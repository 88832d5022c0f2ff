/**
 * The CLI as a user meets it, run as its own process: help with a usage line and an example for
 * every command and subcommand (found by walking the help itself, so a new command without an
 * example fails here), --version, suggestions for typos, and exit code 2 for every usage error,
 * printed on stderr.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT, runPortcullis, tempDir, writeConfig } from '../support/portcullis-process.js';
import { freePort } from '../harness/services.js';

type Run = Awaited<ReturnType<typeof runPortcullis>>;

/** The command names listed under "Commands:" in a help text (without the help command). */
function subcommandsIn(help: string): string[] {
  const section = /\nCommands:\n([\s\S]*?)(?:\n\n|$)/.exec(help)?.[1] ?? '';
  return section
    .split('\n')
    .filter((l) => /^ {2}\S/.test(l))
    .map((l) => l.trim().split(/\s+/)[0]!)
    .filter((name) => name !== 'help');
}

/** Runs `fn` over `items`, at most `limit` at a time (each is a node process). */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!);
      }
    }),
  );
  return results;
}

/** Asserts a usage error: exit code 2, the message on stderr, nothing on stdout. */
function assertUsageError(r: Run, message: RegExp): void {
  assert.equal(r.code, 2, `exit code 2 for a usage error; stderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stdout, '', 'nothing on stdout');
}

describe('portcullis CLI usage', { timeout: 280_000 }, () => {
  test('--help for every command and subcommand: a usage line, described options and an example', async () => {
    const helps = new Map<string, string>();
    let level: string[][] = [[]];
    while (level.length > 0) {
      const runs = await pool(level, 4, async (path) => ({ path, r: await runPortcullis([...path, '--help']) }));
      level = [];
      for (const { path, r } of runs) {
        const name = ['portcullis', ...path].join(' ');
        assert.equal(r.code, 0, `${name} --help exits 0: ${r.stderr}`);
        assert.equal(r.stderr, '', `${name} --help writes only to stdout`);
        helps.set(name, r.stdout);
        level.push(...subcommandsIn(r.stdout).map((sub) => [...path, sub]));
      }
    }
    // The walk found the tree (and would find a new command): every group and leaf the CLI has today.
    for (const expected of [
      'portcullis start',
      'portcullis serve',
      'portcullis token',
      'portcullis kubeconfig',
      'portcullis credential',
      'portcullis policy check',
      'portcullis policy push',
      'portcullis policy explain',
      'portcullis audit tail',
      'portcullis audit replay',
      'portcullis audit verify',
      'portcullis audit export',
      'portcullis audit retention',
      'portcullis audit checkpoints',
      'portcullis approvals list',
      'portcullis approvals approve',
      'portcullis approvals deny',
    ]) {
      assert.ok(helps.has(expected), `${expected} is in the help tree: ${[...helps.keys()].join(', ')}`);
    }
    for (const [name, help] of helps) {
      assert.match(help, new RegExp(`^Usage: ${name}( |$)`, 'm'), `${name}: a usage line`);
      const examples = /\nExamples:\n([\s\S]*)$/.exec(help)?.[1];
      assert.ok(examples !== undefined, `${name} --help has an Examples section:\n${help}`);
      assert.match(examples, /^ {2}# \S/m, `${name}: each example says what it does`);
      assert.ok(
        examples.split('\n').some((l) => l.startsWith(`  ${name}`)),
        `${name}: an example runs ${name}:\n${examples}`,
      );
      // Every option line carries a description (commander prints the flags alone otherwise).
      const options = /\nOptions:\n([\s\S]*?)\n\n/.exec(help)?.[1] ?? '';
      for (const line of options.split('\n').filter((l) => /^ {2}-/.test(l)))
        assert.match(line, /^ {2}-\S.*?\S {2,}\S/, `${name}: the option has a description: ${line}`);
    }
    // Units and defaults are said where they matter (whitespace flattened: commander wraps at the terminal width).
    const flat = (name: string): string => helps.get(name)!.replace(/\s+/g, ' ');
    assert.match(flat('portcullis audit tail'), /--since <time> .*duration back from now .*ISO 8601 .*epoch seconds .*\(default: "10m"\)/);
    assert.match(flat('portcullis audit tail'), /--limit <n> .*1-100000 \(default: 200\)/);
    assert.match(flat('portcullis audit tail'), /--json alias of -o json/);
    assert.match(flat('portcullis token'), /--ttl <duration> .*90s, 5m.*default: identity\.devIssuer\.tokenLifetime/);
    assert.match(flat('portcullis approvals list'), /-o, --output <format> .*choices: "table", "wide", "json", "yaml", default: "table"/);
  });

  test('portcullis help <command> is <command> --help, at any depth', async () => {
    const [viaHelp, viaFlag, nested] = await Promise.all([
      runPortcullis(['help', 'audit', 'tail']),
      runPortcullis(['audit', 'tail', '--help']),
      runPortcullis(['approvals', 'help', 'approve']),
    ]);
    assert.equal(viaHelp.code, 0, viaHelp.stderr);
    assert.equal(viaHelp.stdout, viaFlag.stdout);
    assert.match(viaHelp.stdout, /^Usage: portcullis audit tail \[options\]$/m);
    assert.equal(nested.code, 0, nested.stderr);
    assert.match(nested.stdout, /^Usage: portcullis approvals approve \[options\] <id>$/m);
  });

  test('--version prints the package version; portcullis alone prints the help and exits 2', async () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await runPortcullis([flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${version}\n`);
    }
    const bare = await runPortcullis([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stdout, /^Usage: portcullis \[options\] \[command\]/m);
    assert.match(bare.stdout, /approvals +list, approve and deny held requests/);
  });

  test('typos get a suggestion, on stderr, exit 2', async () => {
    const [command, sub, option, shortOption] = await Promise.all([
      runPortcullis(['aproval', 'list']),
      runPortcullis(['audit', 'tial']),
      runPortcullis(['audit', 'tail', '--folow']),
      runPortcullis(['approvals', 'list', '--as-clien', 'x']),
    ]);
    assertUsageError(command, /^portcullis: unknown command 'aproval' \(Did you mean approvals\?\)$/m);
    assert.match(command.stderr, /Run 'portcullis --help' for usage and examples\./);
    assertUsageError(sub, /unknown command 'tial' \(Did you mean tail\?\)/);
    assertUsageError(option, /^portcullis: unknown option '--folow' \(Did you mean --follow\?\)$/m);
    assert.match(option.stderr, /Run 'portcullis audit tail --help' for usage and examples\./);
    assertUsageError(shortOption, /unknown option '--as-clien' \(Did you mean --as-client\?\)/);
  });

  test('bad values are usage errors naming the flag, the value and what is accepted', async () => {
    const [format, since, limit, role, missing, jsonAndYaml, extra] = await Promise.all([
      runPortcullis(['approvals', 'list', '-o', 'xml']),
      runPortcullis(['audit', 'tail', '--since', 'yesterday']),
      runPortcullis(['audit', 'tail', '--limit', '0']),
      runPortcullis(['serve', 'edgy']),
      runPortcullis(['kubeconfig', '--client', 'ci-bot']),
      runPortcullis(['audit', 'verify', '--json', '-o', 'yaml']),
      runPortcullis(['policy', 'check', 'a.yaml', 'b.yaml']),
    ]);
    assertUsageError(format, /argument 'xml' is invalid\. Allowed choices are table, wide, json, yaml/);
    assertUsageError(since, /--since: expected a duration back from now \(10m, 2h, 7d, 1h30m\), an ISO 8601 date or time .*epoch seconds .* got "yesterday"/);
    assertUsageError(limit, /'--limit <n>' argument '0' is invalid\. expected an integer 1-100000/);
    assertUsageError(role, /'edgy' is invalid for argument 'roles'\. Allowed choices are edge, policy, approval, audit, all/);
    assertUsageError(missing, /required option '--connection <name>' not specified/);
    assertUsageError(jsonAndYaml, /--json is -o json: it cannot be combined with -o yaml/);
    assertUsageError(extra, /too many arguments for 'check'/);
  });

  test('a non-UUID approval id is refused before the config is read or any request is made', async () => {
    const dir = tempDir('cli-usage');
    // Nothing listens on this port and the config has no CA: any request would fail differently.
    const config = writeConfig(dir, 'portcullis.yaml', {
      node: { id: 'n', stateDir: join(dir, 'state') },
      approval: { listen: { host: '127.0.0.1', port: await freePort() } },
    });
    for (const args of [
      ['approvals', 'approve', 'not-an-id', '--token', 't', '--config', config],
      ['approvals', 'deny', '42', '--token', 't', '--config', join(dir, 'missing.yaml')],
    ]) {
      const r = await runPortcullis(args);
      assertUsageError(r, new RegExp(`^portcullis: not an approval id: "${args[2]}" \\(an approval id is a UUID`, 'm'));
      assert.doesNotMatch(r.stderr, /cannot reach|routes|missing\.yaml/);
    }
  });

  test('policy explain: -o json as --json printed it, -o yaml the same data; --at takes the documented forms', async () => {
    const base = [
      'policy',
      'explain',
      '--as',
      'ci-bot',
      '--group',
      'bots',
      '--connection',
      'sandbox',
      'delete',
      'namespaces',
      'staging',
      '--policy',
      join(REPO_ROOT, 'examples', 'policy.yaml'),
    ];
    const [json, alias, yaml, text, ago, iso, epoch, bad] = await Promise.all([
      runPortcullis([...base, '-o', 'json']),
      runPortcullis([...base, '--json']),
      runPortcullis([...base, '-o', 'yaml']),
      runPortcullis(base),
      runPortcullis([...base, '--at', '1h30m', '-o', 'json']),
      runPortcullis([...base, '--at', '2026-06-01T14:00:00+02:00', '-o', 'json']),
      runPortcullis([...base, '--at', '1780315200', '-o', 'json']),
      runPortcullis([...base, '--at', 'last tuesday']),
    ]);
    for (const r of [json, alias, yaml, text, ago, iso, epoch]) assert.equal(r.code, 0, r.stderr);
    assert.equal(alias.stdout, json.stdout);
    const data = JSON.parse(json.stdout) as { decision: { effect: string; ruleId: string }; trace: unknown[] };
    assert.equal(data.decision.ruleId, 'delete-namespace-needs-sre');
    assert.ok(data.trace.length > 1);
    const { parse } = await import('yaml');
    assert.deepEqual(parse(yaml.stdout), data);
    assert.match(text.stdout, /^decision: REQUIRE_APPROVAL by rule delete-namespace-needs-sre$/m);
    for (const r of [ago, iso, epoch]) assert.equal((JSON.parse(r.stdout) as typeof data).decision.ruleId, 'delete-namespace-needs-sre');
    assertUsageError(bad, /^portcullis: --at: expected a duration back from now .* got "last tuesday"$/m);
  });

  test('policy check: valid and invalid, as text (problems on stderr) and as data (on stdout); exit 1 for problems', async () => {
    const dir = tempDir('cli-policy');
    const bad = join(dir, 'bad.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(bad, 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: x, version: "1" }\nrules:\n  - id: r\n    effect: maybe\n');
    const example = join(REPO_ROOT, 'examples', 'policy.yaml');
    const [ok, okJson, broken, brokenYaml] = await Promise.all([
      runPortcullis(['policy', 'check', example]),
      runPortcullis(['policy', 'check', example, '-o', 'json']),
      runPortcullis(['policy', 'check', bad]),
      runPortcullis(['policy', 'check', bad, '-o', 'yaml']),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /policy\.yaml: valid \(policy \S+, \d+ rules\)/);
    assert.equal(okJson.code, 0, okJson.stderr);
    const data = JSON.parse(okJson.stdout) as { valid: boolean; policy: { name: string; rules: number } };
    assert.equal(data.valid, true);
    assert.equal(data.policy.name, 'example');
    assert.ok(data.policy.rules > 0);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /bad\.yaml:6:\d+: rules\[0\]\.effect/);
    assert.equal(brokenYaml.code, 1);
    const { parse } = await import('yaml');
    const problems = parse(brokenYaml.stdout) as { valid: boolean; errors: { line: number; path: string }[] };
    assert.equal(problems.valid, false);
    assert.ok(
      problems.errors.some((e) => e.line === 6 && e.path === 'rules[0].effect'),
      brokenYaml.stdout,
    );
  });

  test('policy check and push: an unknown verb is an error with a suggestion, an unknown built-in resource a warning', async () => {
    const dir = tempDir('cli-policy-vocabulary');
    const { writeFileSync } = await import('node:fs');
    const head = 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: x, version: "1" }\nrules:\n  - id: x\n    effect: deny\n';
    const typo = join(dir, 'typo.yaml');
    writeFileSync(typo, `${head}    match: { verbs: [delet] }\n`);
    const warned = join(dir, 'warned.yaml');
    writeFileSync(warned, `${head}    match: { verbs: [delete], apiGroups: [apps], resources: [deploymnets] }\n`);
    // Push validates before it connects: nothing listens at this NATS address.
    const config = writeConfig(dir, 'portcullis.yaml', {
      node: { id: 'n', stateDir: join(dir, 'state') },
      bus: { mode: 'nats', nats: { servers: [`nats://127.0.0.1:${await freePort()}`] } },
    });
    const [check, checkJson, push, checkWarned, checkWarnedJson, pushWarned] = await Promise.all([
      runPortcullis(['policy', 'check', typo]),
      runPortcullis(['policy', 'check', typo, '-o', 'json']),
      runPortcullis(['policy', 'push', typo, '--config', config]),
      runPortcullis(['policy', 'check', warned]),
      runPortcullis(['policy', 'check', warned, '-o', 'json']),
      runPortcullis(['policy', 'push', warned, '--config', config]),
    ]);
    const message = /typo\.yaml:7:22: rules\[0\]\.match\.verbs\[0\]: unknown verb "delet" in rule "x" \(did you mean "delete"\?\)/;
    assert.equal(check.code, 1);
    assert.match(check.stderr, message);
    assert.equal((JSON.parse(checkJson.stdout) as { valid: boolean }).valid, false);
    assert.equal(push.code, 1);
    assert.match(push.stderr, /nothing was changed/);
    assert.match(push.stderr, message);
    assert.doesNotMatch(push.stderr, /cannot reach NATS/, 'refused before connecting');

    const warning =
      /warned\.yaml:7:\d+: warning: rules\[0\]\.match\.resources\[0\]: unknown resource "deploymnets" in rule "x" for API group "apps" \(did you mean "deployments"\?\)/;
    assert.equal(checkWarned.code, 0, checkWarned.stderr);
    assert.match(checkWarned.stdout, /warned\.yaml: valid \(policy 1, 1 rules, 1 warnings\)/);
    assert.match(checkWarned.stderr, warning);
    const data = JSON.parse(checkWarnedJson.stdout) as { valid: boolean; warnings: { line: number; path: string }[] };
    assert.equal(data.valid, true);
    assert.deepEqual(
      data.warnings.map((w) => [w.line, w.path]),
      [[7, 'rules[0].match.resources[0]']],
    );
    // A warning does not stop a push: it is printed, then the push goes on (and here finds no NATS).
    assert.match(pushWarned.stderr, warning);
    assert.match(pushWarned.stderr, /cannot reach NATS/);
  });
});
