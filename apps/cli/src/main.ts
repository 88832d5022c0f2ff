import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '@portcullis/config';
import { CliError, ExitCode } from './cli-error.js';
import { withExamples } from './command-help.js';
import { PACKAGE_ROOT } from './config-file.js';
import { createApprovalsCommand } from './commands/approvals.command.js';
import { createAuditCommand } from './commands/audit.command.js';
import { createCredentialCommand } from './commands/credential.command.js';
import { createServeCommand, createStartCommand } from './commands/gateway.command.js';
import { createKubeconfigCommand } from './commands/kubeconfig.command.js';
import { runCredentialPlugin } from './credential-plugin/plugin.js';
import { createPolicyCommand } from './commands/policy.command.js';
import { createTokenCommand } from './commands/token.command.js';

/** The `portcullis` command tree: one file per command group under commands/. */
function buildProgram(): Command {
  const { version } = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  const program = new Command('portcullis')
    .description('Portcullis — access gateway for non-human identities')
    .version(version, '-V, --version', 'print the version')
    .helpCommand('help [command...]', 'show the help of a command, e.g. portcullis help audit tail')
    .addCommand(createStartCommand())
    .addCommand(createServeCommand())
    .addCommand(createTokenCommand())
    .addCommand(createKubeconfigCommand())
    .addCommand(createCredentialCommand())
    .addCommand(createPolicyCommand())
    .addCommand(createAuditCommand())
    .addCommand(createApprovalsCommand())
    .addHelpText(
      'after',
      '\nConfig: --config FILE, else $PORTCULLIS_CONFIG, else ./portcullis.yaml, else the example config.\nExit codes: 0 done, 1 failed (or problems found: audit verify, policy check), 2 usage error.',
    );
  withExamples(program, [
    ['portcullis start', 'the embedded gateway with the sandbox (npm start)'],
    ['portcullis audit tail --help', 'the options and examples of any command'],
  ]);
  configureTree(program, 'portcullis');
  return program;
}

/**
 * Every command throws instead of exiting (main maps the exit code), prints its usage errors as
 * one `portcullis: …` line with commander's "Did you mean …?" on it, and points at its own help.
 */
function configureTree(command: Command, path: string): void {
  command.helpOption('-h, --help', 'show this help');
  if (command.commands.length > 0 && command.parent !== null) command.helpCommand('help [command]', `show the help of a ${path} command`);
  command
    .exitOverride()
    .showSuggestionAfterError(true)
    .showHelpAfterError(`Run '${path} --help' for usage and examples.`)
    .configureOutput({
      outputError: (text, write) =>
        write(
          `portcullis: ${text
            .replace(/^error: /, '')
            .replace(/\n\(Did you mean/, ' (Did you mean')
            .trimEnd()}\n`,
        ),
    });
  for (const sub of command.commands) configureTree(sub, `${path} ${sub.name()}`);
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  if (argv.length === 0) {
    program.outputHelp();
    return ExitCode.Usage;
  }
  // `portcullis help audit tail` is `portcullis audit tail --help` (commander's help command takes one level).
  const args = argv[0] === 'help' && argv.length > 1 ? [...argv.slice(1), '--help'] : argv;
  // The credential plugin parses its own arguments (and prints its own help): see bin/portcullis.js.
  if (args[0] === 'credential') return runCredentialPlugin(args.slice(1));
  await program.parseAsync(args, { from: 'user' });
  return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.Ok;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof CommanderError) {
      // Help and --version end in a CommanderError too, with exit code 0; commander already printed the rest.
      process.exit(err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage);
    }
    if (err instanceof CliError) {
      process.stderr.write(`portcullis: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`portcullis: ${err.message}\n`);
      process.exit(ExitCode.Usage);
    }
    process.stderr.write(`portcullis: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(ExitCode.Failure);
  },
);
