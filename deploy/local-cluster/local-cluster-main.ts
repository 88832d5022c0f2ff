/**
 * `npm run cluster`: the local multi-process cluster (see deploy/README.md). Prints how to point
 * kubectl at the load balancer; Ctrl-C stops everything.
 *   --state-dir DIR  (default .portcullis/cluster)   --edges N (3)   --port P (9443; 0 = free)
 *   --json           one JSON line with the endpoints instead of the banner (tests)
 */
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalCluster, type LocalCluster } from './local-cluster.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'state-dir': { type: 'string', default: '.portcullis/cluster' },
      edges: { type: 'string', default: '3' },
      port: { type: 'string', default: '9443' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const edges = Number(values.edges);
  const port = Number(values.port);
  if (!Number.isInteger(edges) || edges < 1 || edges > 16) throw new Error(`--edges: expected 1..16, got ${values.edges}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: expected 0..65535, got ${values.port}`);
  let cluster: LocalCluster | undefined;
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('\nstopping the local cluster…\n');
    const done = (): void => process.exit(0);
    (cluster?.stop() ?? Promise.resolve()).then(done, done);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  cluster = await startLocalCluster({
    stateDir: values['state-dir'],
    edges,
    lbPort: port,
    progress: (line) => process.stderr.write(`[cluster] ${line}\n`),
  });
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({
        ready: true,
        url: cluster.url,
        connection: cluster.connection,
        clientConfig: cluster.clientConfig,
        operatorConfig: cluster.operatorConfig,
        caFile: cluster.caFile,
        clickHouseUrl: cluster.clickHouseUrl,
        clickHouseDatabase: cluster.clickHouseDatabase,
        tracesFile: cluster.tracesFile,
        processes: cluster.processes,
      })}\n`,
    );
    return;
  }
  process.stdout.write(banner(cluster));
}

function banner(c: LocalCluster): string {
  const rel = (p: string): string => {
    const r = relative(process.cwd(), p);
    return r.startsWith('..') ? p : r;
  };
  const kc = `${rel(c.stateDir)}/kubeconfig`;
  const row = (p: LocalCluster['processes'][number]): string =>
    `  ${p.nodeId.padEnd(12)} ${(p.url ?? '').padEnd(24)} metrics ${p.observabilityUrl}/metrics   log ${rel(p.log)}`;
  return [
    '',
    `Portcullis local cluster is running: ${c.processes.filter((p) => p.role === 'edge').length} edges behind nginx, NATS JetStream, Redis, ClickHouse.`,
    `  load balancer   ${c.url}   (nginx, TLS; CA ${rel(c.caFile)})`,
    `  upstream        connection ${c.connection} → the Kubernetes API-server fixture`,
    `  clickhouse      ${c.clickHouseUrl}   database ${c.clickHouseDatabase}`,
    `  traces          ${rel(c.tracesFile)}   (OTLP/HTTP JSON, every role)`,
    ...c.processes.map(row),
    '',
    'Point kubectl at the load balancer, in a second shell:',
    `  npx portcullis kubeconfig --connection ${c.connection} --client ci-bot --config ${rel(c.clientConfig)} > ${kc}`,
    `  kubectl --kubeconfig ${kc} get pods -A`,
    `  kubectl --kubeconfig ${kc} delete namespace staging      # refused by the example policy`,
    `  npx portcullis audit tail --config ${rel(c.clientConfig)}   # node_id shows which edge served each request`,
    `  npx portcullis policy push examples/policy.yaml --config ${rel(c.operatorConfig)}   # as the NATS operator user, the only one that writes the policy bucket`,
    '',
    'Stop with Ctrl-C.',
    '',
  ].join('\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`npm run cluster: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
