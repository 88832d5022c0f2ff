import { Option, type Command } from 'commander';

/** One example in a command's help: the command line and what it does. */
export type Example = readonly [commandLine: string, what: string];

/** Adds an "Examples:" section after the options, the way kubectl's help ends. */
export function withExamples(command: Command, examples: readonly [Example, ...Example[]]): Command {
  const text = examples.map(([line, what]) => `  # ${what}\n  ${line}`).join('\n\n');
  return command.addHelpText('after', `\nExamples:\n${text}\n`);
}

/** `--config <file>`: which config file the command reads. */
export function configOption(): Option {
  return new Option(
    '--config <file>',
    'the Portcullis config file (default: $PORTCULLIS_CONFIG, else ./portcullis.yaml, else the example config shipped with the package)',
  );
}

/** Collects a repeatable option's values (`--scope a --scope b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
