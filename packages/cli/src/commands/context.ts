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

/** Asks "yes" on a terminal; refuses without one unless --yes. */
export async function confirm(ctx: Ctx, question: string): Promise<boolean> {
  if (ctx.flags.yes) return true;
  if (!ctx.io.stdinTty)
    throw new CliError(`${question}\nRefusing to ask without a terminal: pass --yes to confirm.`);
  const answer = await ctx.io.prompt(`${question} Only "yes" is accepted: `);
  return answer.trim() === 'yes';
}
