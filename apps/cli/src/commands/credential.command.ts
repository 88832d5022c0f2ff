import { Command } from 'commander';

/**
 * `portcullis credential` as listed in `portcullis --help`. It never runs through commander:
 * bin/portcullis.js loads the plugin's own small entry point before this tree exists, and main.ts
 * hands `credential …` to the plugin, which parses its arguments and prints its own help.
 */
export function createCredentialCommand(): Command {
  return new Command('credential').summary("the exec credential plugin a kubeconfig from 'portcullis kubeconfig' runs (cached short-lived tokens)");
}
