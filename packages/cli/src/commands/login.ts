/** `nexus login`: stores a profile (URL + admin key) in the user's config file, mode 0600. */
import { Api } from '../api.ts';
import { configPath, readConfig, writeConfig } from '../connection.ts';
import { CliError } from '../io.ts';
import type { Ctx } from './context.ts';

export async function login(ctx: Ctx): Promise<number> {
  const url = ctx.flags.url;
  if (url === undefined) throw new CliError('give the broker: nexus login --url URL');
  try {
    new URL(url);
  } catch {
    throw new CliError(`not a URL: ${url}`);
  }
  const name = ctx.flags.profile ?? 'default';
  const key = (
    ctx.io.stdinTty
      ? await ctx.io.prompt(`Admin API key for ${url}: `, { hidden: true })
      : await ctx.io.readStdin()
  ).trim();
  if (key === '') throw new CliError('no API key given (type it at the prompt, or pipe it on stdin)');
  if (!ctx.flags['no-verify']) {
    try {
      await new Api({ url, apiKey: key, source: 'login' }).listProviders();
    } catch (error) {
      throw new CliError(`the broker refused this key or cannot be reached: ${(error as Error).message}`);
    }
  }
  const config = readConfig(ctx.io.env);
  config.profiles[name] = { url, api_key: key };
  config.default_profile ??= name;
  const path = writeConfig(ctx.io.env, config);
  ctx.io.err(`stored profile "${name}" in ${path} (mode 0600)`);
  if (ctx.format === 'json') ctx.io.out(JSON.stringify({ profile: name, url, path: configPath(ctx.io.env) }));
  return 0;
}
