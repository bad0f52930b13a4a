/**
 * `nexus providers add KEY`: a provider made from a catalogue entry (`GET /catalog`, decision 0015).
 * The broker expands the entry; the flags given here win over it. The client secret is read from a
 * file (or stdin with `-`), never from the command line, and never printed.
 */
import { readFileSync } from 'node:fs';
import { CliError } from '../io.ts';
import { emit } from '../render.ts';
import { USAGE_EXIT } from '../usage.ts';
import type { Ctx } from './context.ts';

function readSecret(path: string): string {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    throw new CliError(
      `cannot read the client secret from ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  // One trailing newline (as `echo` and editors leave) is not part of the secret.
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new CliError(`${path} is empty: it must hold the client secret`);
  return secret;
}

export async function providersAdd(ctx: Ctx): Promise<number> {
  const key = ctx.args[0];
  if (key === undefined)
    throw new CliError(
      'give the catalogue key: nexus providers add KEY [--client-id ID --client-secret-file FILE] (`GET /catalog` lists them; docs/catalog.md)',
      USAGE_EXIT,
    );
  const f = ctx.flags;
  const profile: Record<string, unknown> = { template: key };
  if (f.name !== undefined) profile.name = f.name;
  if (f['client-id'] !== undefined) profile.client_id = f['client-id'];
  if (f['client-secret-file'] !== undefined) profile.client_secret = readSecret(f['client-secret-file']);
  if (f.scopes !== undefined)
    profile.scopes = f.scopes
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  const api = ctx.api();
  const { id } = await api.createProvider(profile as never);
  const created = await api.getProvider(id);
  const template = created.params.template as { key: string; version: number } | undefined;
  const data = { id, name: created.name, auth_type: created.auth_type, template };
  emit(ctx.io, ctx.format, data, () => {
    ctx.io.out(
      `created provider ${created.name} (${id}) from catalogue entry ${key} version ${template?.version}`,
    );
    if (created.auth_type === 'oauth2')
      ctx.io.err(
        "register the broker's callback (BASE_URL + REDIRECT_PATH, /auth/callback by default) as the app's redirect URI",
      );
  });
  return 0;
}
