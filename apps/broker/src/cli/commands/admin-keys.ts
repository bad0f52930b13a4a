import { ADMIN_SCOPES, type AdminScope } from '../../auth/principal.ts';
import { NexusError } from '../../errors/nexus-error.ts';
import { CliExit, configOrExit, containerOrExit, requireMigrated } from '../context.ts';
import { cliActor, type Io, table } from '../output.ts';

type Action =
  | { verb: 'create'; name: string; scope?: string | undefined }
  | { verb: 'list'; all: boolean }
  | { verb: 'revoke'; ref: string };

/** `nexus admin-keys create|list|revoke`: works on the database directly, so the first key can be made. */
export async function adminKeysCommand(
  io: Io,
  env: NodeJS.ProcessEnv,
  action: Action,
  json: boolean,
): Promise<number> {
  const container = await containerOrExit(configOrExit(env));
  try {
    await requireMigrated(container);
    const ctx = { actor: cliActor() };
    if (action.verb === 'create') {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(action.name)) {
        throw new CliExit(
          '--name: 1-64 letters, digits, dot, dash or underscore, starting with a letter or digit',
          2,
        );
      }
      const scope = action.scope ?? 'full';
      if (!(ADMIN_SCOPES as readonly string[]).includes(scope))
        throw new CliExit(`--scope: one of ${ADMIN_SCOPES.join(', ')} (default full)`, 2);
      const created = await container.adminKeys.create(ctx, action.name, scope as AdminScope);
      if (json) io.out(JSON.stringify(created));
      else {
        io.out(created.key);
        io.err(
          `Created admin key "${created.name}" (id ${created.id}). The key above is shown only once. Scope: ${created.scope}.`,
        );
      }
    } else if (action.verb === 'list') {
      const keys = await container.adminKeys.list(action.all);
      io.out(
        json
          ? JSON.stringify(keys)
          : table(keys, ['id', 'name', 'scope', 'created_at', 'last_used_at', 'revoked_at']),
      );
    } else {
      const revoked = await container.adminKeys.revoke(ctx, action.ref);
      io.out(json ? JSON.stringify(revoked) : `Revoked admin key "${revoked.name}" (id ${revoked.id}).`);
    }
    return 0;
  } catch (error) {
    if (error instanceof NexusError && error.expose) throw new CliExit(`${error.code}: ${error.message}`, 1);
    throw error;
  } finally {
    await container.close();
  }
}
