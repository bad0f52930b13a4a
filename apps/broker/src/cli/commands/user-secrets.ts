import { readFileSync } from 'node:fs';
import {
  MAX_SECRET_VALUE,
  MAX_USER_ID,
  SECRET_NAME,
  SECRET_ZONE,
  type SecretOwner,
} from '../../modules/user-secrets/user-secrets.service.ts';
import { CliExit, configOrExit, containerOrExit, requireMigrated } from '../context.ts';
import { cliActor, type Io, table } from '../output.ts';

export interface UserSecretOptions {
  readonly verb: 'set' | 'get' | 'list' | 'delete' | 'versions';
  readonly name: string | undefined;
  readonly user: string | undefined;
  readonly zone: string | undefined;
  readonly value: string | undefined;
  readonly fromFile: string | undefined;
  readonly version: string | undefined;
  readonly json: boolean;
}

/** Every item of a paged list, following `next_cursor` to the last page. */
async function everyPage<P extends { next_cursor: string | null }, T>(
  pageAt: (cursor: string | undefined) => Promise<P>,
  items: (page: P) => T[],
): Promise<T[]> {
  const all: T[] = [];
  for (let cursor: string | null | undefined; cursor !== null; ) {
    const page = await pageAt(cursor);
    all.push(...items(page));
    cursor = page.next_cursor;
  }
  return all;
}

/** Reads the value without echoing it: a prompt on a terminal, otherwise all of standard input. */
async function readValue(io: Io): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  io.err('Value (not shown): ');
  stdin.setRawMode(true);
  stdin.resume();
  let value = '';
  try {
    for await (const chunk of stdin) {
      for (const ch of (chunk as Buffer).toString('utf8')) {
        if (ch === '\r' || ch === '\n') return value;
        if (ch === '\u0003') throw new CliExit('cancelled', 130);
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    }
    return value;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
  }
}

/**
 * `nexus secrets set|get|list|delete|versions`: a user's secrets from the terminal, straight on the
 * broker's database and secret backend (like `admin-keys`), audited with the OS user as actor. A
 * value is never taken from a plain argument unless `--value` is given explicitly.
 */
export async function userSecretsCommand(
  io: Io,
  env: NodeJS.ProcessEnv,
  o: UserSecretOptions,
): Promise<number> {
  if (o.user === undefined) throw new CliExit(`secrets ${o.verb}: --user is required`, 2);
  if (o.verb !== 'list' && o.name === undefined)
    throw new CliExit(`secrets ${o.verb}: give the secret's name`, 2);
  // The REST API's rules: a secret the CLI stores must be one agents and references can name.
  const userId = o.user.trim();
  if (userId.length === 0 || userId.length > MAX_USER_ID)
    throw new CliExit(`secrets ${o.verb}: --user must be 1 to ${MAX_USER_ID} characters`, 2);
  if (o.zone !== undefined && !SECRET_ZONE.test(o.zone))
    throw new CliExit(
      `secrets ${o.verb}: --zone must be lower-case letters, digits, dash and underscore (at most 64)`,
      2,
    );
  if (o.name !== undefined && !SECRET_NAME.test(o.name))
    throw new CliExit(
      `secrets ${o.verb}: the name must be letters, digits, dot, dash and underscore (at most 128)`,
      2,
    );
  const owner: SecretOwner = { userId, zone: o.zone ?? 'default' };
  let value: string | undefined;
  if (o.verb === 'set') {
    if (o.value !== undefined && o.fromFile !== undefined)
      throw new CliExit('secrets set: give --value or --from-file, not both', 2);
    value = o.value ?? (o.fromFile !== undefined ? readFileSync(o.fromFile, 'utf8') : await readValue(io));
    if (value.length === 0) throw new CliExit('secrets set: the value is empty', 2);
    if (value.length > MAX_SECRET_VALUE)
      throw new CliExit(`secrets set: the value is longer than ${MAX_SECRET_VALUE} characters`, 2);
  }
  const container = await containerOrExit(configOrExit(env));
  try {
    await requireMigrated(container);
    const ctx = { actor: cliActor() };
    const secrets = container.userSecrets;
    switch (o.verb) {
      case 'set': {
        const result = await secrets.put(ctx, owner, { name: o.name!, value: value! });
        if (o.json) io.out(JSON.stringify(result));
        else io.out(`Stored ${result.name} (zone ${result.zone}) version ${result.version}.`);
        return 0;
      }
      case 'get': {
        const version = o.version === undefined ? undefined : Number(o.version);
        if (version !== undefined && (!Number.isInteger(version) || version < 1))
          throw new CliExit('secrets get: --at-version must be a positive whole number', 2);
        const result = await secrets.read(ctx, owner, o.name!, version);
        io.out(o.json ? JSON.stringify(result) : result.value);
        return 0;
      }
      case 'list': {
        const items = await everyPage(
          (cursor) => secrets.list(owner, false, { cursor }),
          (page) => page.secrets,
        );
        io.out(
          o.json ? JSON.stringify(items) : table(items, ['name', 'current_version', 'enabled', 'updated_at']),
        );
        return 0;
      }
      case 'delete':
        await secrets.remove(ctx, owner, o.name!);
        io.out(
          o.json ? JSON.stringify({ deleted: o.name }) : `Deleted ${o.name} (restore it through the API).`,
        );
        return 0;
      case 'versions': {
        const items = await everyPage(
          (cursor) => secrets.versions(owner, o.name!, { cursor }),
          (page) => page.versions,
        );
        io.out(o.json ? JSON.stringify(items) : table(items, ['version', 'created_at', 'created_by']));
        return 0;
      }
    }
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('user_secret'))
      throw new CliExit(`secrets ${o.verb}: ${(error as Error).message}`, 1);
    throw error;
  } finally {
    await container.close();
  }
}
