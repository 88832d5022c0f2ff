import { Option } from 'commander';
import { stringify } from 'yaml';
import { cleanText } from '@portcullis/audit-store';
import { CliError, ExitCode } from './cli-error.js';

/** The forms `-o, --output` can take (not every command offers every form). */
export const OutputFormat = {
  /** An aligned table with a header row (lists). */
  Table: 'table',
  /** The table with more columns. */
  Wide: 'wide',
  /** What the command prints for people when it is not a list. */
  Text: 'text',
  Json: 'json',
  Yaml: 'yaml',
} as const;
export type OutputFormat = (typeof OutputFormat)[keyof typeof OutputFormat];

/** What a command's -o/--json options parse into. */
export interface OutputOptions {
  output: string;
  json?: boolean;
}

/** `-o, --output <format>` offering `formats`, the first one the default. */
export function outputOption(formats: readonly [OutputFormat, ...OutputFormat[]], what = 'the result'): Option {
  return new Option('-o, --output <format>', `how to print ${what}`).choices(formats).default(formats[0]);
}

/** `--json`, the older spelling of `-o json`, kept for existing scripts. */
export function jsonAliasOption(): Option {
  return new Option('--json', 'alias of -o json (kept for existing scripts)');
}

/** The format asked for: `--json` is `-o json`; both with different formats is a usage error. */
export function outputFormat(opts: OutputOptions, explicitOutput: boolean): OutputFormat {
  if (opts.json === true) {
    if (explicitOutput && opts.output !== OutputFormat.Json)
      throw new CliError(`--json is -o json: it cannot be combined with -o ${opts.output}`, ExitCode.Usage);
    return OutputFormat.Json;
  }
  return opts.output as OutputFormat;
}

/** `value` as a YAML document (the same data as `-o json`). */
export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0 });
}

/** Space between columns (kubectl uses three). */
const GAP = '   ';
/** What an empty cell shows, so every column stays visible to the eye and to `awk`. */
export const EMPTY_CELL = '-';

/**
 * An aligned table in the shape of `kubectl get`: upper-case headers, each column as wide as its
 * widest cell, three spaces between columns, no trailing spaces; the widths come back for
 * {@link renderTableRows}. Cells carry client-controlled text (names, subjects): control
 * characters are escaped so they cannot drive the terminal.
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): { lines: string[]; widths: number[] } {
  const cells = rows.map((r) => filled(headers, r));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  return { lines: [headers, ...cells].map((r) => alignedLine(r, widths)), widths };
}

/**
 * More rows for a table whose header is already printed (`--follow`): padded to its widths. A
 * wider cell pushes the rest of its row right rather than misaligning what is on screen.
 */
export function renderTableRows(headers: readonly string[], rows: readonly (readonly string[])[], widths: readonly number[]): string[] {
  return rows.map((r) => alignedLine(filled(headers, r), widths));
}

function filled(headers: readonly string[], row: readonly string[]): string[] {
  return headers.map((_, i) => (row[i] === undefined || row[i] === '' ? EMPTY_CELL : cleanText(row[i])));
}

function alignedLine(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
    .join(GAP)
    .trimEnd();
}
