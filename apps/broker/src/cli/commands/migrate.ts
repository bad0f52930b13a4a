import { openDatabase } from '../../db/client.ts';
import { MigrationError, migrate, migrationStatus } from '../../db/migrate.ts';
import { CliExit, configOrExit, databaseFailure } from '../context.ts';
import type { Io } from '../output.ts';

/** `nexus migrate [--status]`: needs only the database, not the keys. */
export async function migrateCommand(
  io: Io,
  env: NodeJS.ProcessEnv,
  options: { status: boolean; json: boolean },
): Promise<number> {
  const config = configOrExit(env);
  const db = openDatabase(config.database);
  try {
    if (options.status) {
      const status = await migrationStatus(db);
      if (options.json) io.out(JSON.stringify(status));
      else {
        for (const id of status.applied) io.out(`applied  ${id}`);
        for (const id of status.pending) io.out(`pending  ${id}`);
      }
      return status.pending.length > 0 ? 3 : 0;
    }
    const result = await migrate(db);
    if (options.json) io.out(JSON.stringify(result));
    else if (result.applied.length === 0)
      io.out(`Database is up to date (${result.alreadyApplied} migrations applied).`);
    else io.out(`Applied ${result.applied.length} migration(s): ${result.applied.join(', ')}`);
    return 0;
  } catch (error) {
    if (error instanceof MigrationError) throw new CliExit(`migrate: ${error.message}`, 1);
    throw databaseFailure(error, config.database);
  } finally {
    await db.close();
  }
}
