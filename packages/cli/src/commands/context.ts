/** What every command gets: the terminal, the parsed flags, and a lazily made API client. */
import { Api } from '../api.ts';
import { resolveConnection } from '../connection.ts';
import { CliError, type Io } from '../io.ts';
import type { Format } from '../render.ts';

export interface Flags {
  file?: string;
  prune?: boolean;
  yes?: boolean;
  'update-secrets'?: boolean;
  'agent-secrets'?: string;
  out?: string;
  url?: string;
  profile?: string;
  output?: string;
  json?: boolean;
  user?: string;
  zone?: string;
  follow?: boolean;
  limit?: string;
  'event-type'?: string;
  actor?: string;
  resource?: string;
  since?: string;
  cursor?: string;
  status?: string;
  interval?: string;
  'no-verify'?: boolean;
  'include-deleted'?: boolean;
  remote?: boolean;
  'detailed-exitcode'?: boolean;
  'client-id'?: string;
  'client-secret-file'?: string;
  name?: string;
  scopes?: string;
}

export interface Ctx {
  io: Io;
  flags: Flags;
  args: string[];
  format: Format;
  api(): Api;
}

export function makeCtx(io: Io, flags: Flags, args: string[]): Ctx {
  const output = flags.json ? 'json' : (flags.output ?? 'table');
  if (output !== 'table' && output !== 'json' && output !== 'yaml')
    throw new CliError(`--output must be table, json or yaml (not ${output})`);
  let api: Api | undefined;
  return {
    io,
    flags,
    args,
    format: output,
    api: () => {
      api ??= new Api(resolveConnection(io.env, flags));
      return api;
    },
  };
}

/** How long a confirmation waits for its line on a stdin that is not a terminal. */
export const STDIN_ANSWER_WAIT_MS = 5000;

/**
 * Confirms with --yes; on a terminal, by typing "yes" at the prompt; otherwise by the first line of
 * stdin, "y" or "yes" in any case (`yes | nexus apply`, `echo yes | …`). Anything else on that
 * line cancels. With nothing to read (stdin closed, empty, or no line within
 * STDIN_ANSWER_WAIT_MS) it refuses with an error instead of waiting for ever.
 */
export async function confirm(ctx: Ctx, question: string): Promise<boolean> {
  if (ctx.flags.yes) return true;
  if (ctx.io.stdinTty) {
    const answer = await ctx.io.prompt(`${question} Only "yes" is accepted: `);
    return answer.trim() === 'yes';
  }
  // One line after "error: " (the question may start with a blank line, for the prompt's sake).
  const refuse = (why: string) =>
    new CliError(
      `${question.trim()} Refusing to ask without a terminal: pass --yes to confirm, or pipe the answer (yes | nexus …). ${why}`,
    );
  if (ctx.flags.file === '-')
    throw refuse('The manifest was read from stdin (-f -), so stdin cannot answer.');
  const read = await ctx.io.readLine(STDIN_ANSWER_WAIT_MS);
  if (read.kind === 'eof') throw refuse('Stdin is empty.');
  if (read.kind === 'timeout')
    throw refuse(`No line arrived on stdin within ${STDIN_ANSWER_WAIT_MS / 1000} s.`);
  const yes = /^(y|yes)$/i.test(read.text.trim());
  // The line itself is not echoed unless it is the answer: stdin may hold anything.
  ctx.io.err(`${question.trim()} ${yes ? read.text.trim() : '(not "y" or "yes")'} [read from stdin]`);
  return yes;
}
