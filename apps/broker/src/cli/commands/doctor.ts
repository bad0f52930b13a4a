import { describeFeatureOff, featuresOff } from '../../config/features.ts';
import { ConfigError, loadConfig } from '../../config/load.ts';
import { buildContainer } from '../../container.ts';
import { type ResolvedKeys, resolveKeys } from '../../crypto/key-file.ts';
import { resolveTransitKeys } from '../../crypto/transit.ts';
import { type Database, openDatabase } from '../../db/client.ts';
import { migrationStatus } from '../../db/migrate.ts';
import { keyRotationFindings } from '../../modules/keys/key-report.ts';
import { describeBackendFailure } from '../../modules/secrets/secret-backend.factory.ts';
import type { Io } from '../output.ts';

type Level = 'ok' | 'warn' | 'fail';
interface Finding {
  level: Level;
  check: string;
  message: string;
  fix?: string;
}

const reason = (error: unknown) =>
  (error instanceof Error ? error.message : String(error)).split('\n')[0]!.slice(0, 300);

/**
 * `nexus doctor`: checks configuration, key ring, database, migrations, secret backend and admin
 * access, and says for each problem how to fix it. Exit 1 when anything fails.
 */
export async function doctor(io: Io, env: NodeJS.ProcessEnv, json: boolean): Promise<number> {
  const findings: Finding[] = [];
  const add = (level: Level, check: string, message: string, fix?: string) =>
    findings.push({ level, check, message, ...(fix ? { fix } : {}) });
  let db: Database | undefined;
  try {
    let config: ReturnType<typeof loadConfig>;
    try {
      config = loadConfig(env);
      add('ok', 'config', `mode ${config.mode}, data directory ${config.dataDir}`);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const problem of error.problems) add('fail', 'config', problem, 'see docs/configuration.md');
      return report(io, findings, json);
    }

    let keys: ResolvedKeys | undefined;
    try {
      keys =
        config.keys.transit !== undefined
          ? await resolveTransitKeys(config)
          : resolveKeys({ ...config, keys: { ...config.keys, generateIfMissing: false } });
      const where =
        config.keys.transit !== undefined
          ? `the environment, unwrapped by Transit key ${config.keys.transit.key}`
          : keys.source.kind === 'file'
            ? `key file ${keys.source.path}`
            : 'environment';
      add(
        'ok',
        'keys',
        `${keys.ring.kids.length} encryption key(s) from ${where}; primary ${keys.ring.primaryKid}`,
      );
      if (config.mode !== 'production' && keys.source.kind === 'file') {
        add(
          'warn',
          'keys',
          'using a development key file',
          'in production set ENCRYPTION_KEY and STATE_KEY, or NEXUS_KEY_FILE',
        );
      }
    } catch (error) {
      add('fail', 'keys', reason(error), 'generate keys with `nexus keys generate`');
    }

    let migrated = false;
    try {
      // Inside: a data directory that cannot be made is the finding to report, not a crash.
      db = openDatabase(config.database);
      await db.ping();
      add('ok', 'database', `${db.dialect} reachable`);
      const status = await migrationStatus(db);
      if (status.pending.length > 0)
        add(
          'warn',
          'migrations',
          `${status.pending.length} pending: ${status.pending.join(', ')}`,
          'run `nexus migrate`',
        );
      else {
        migrated = true;
        add('ok', 'migrations', `${status.applied.length} applied, checksums match`);
      }
    } catch (error) {
      add(
        'fail',
        'database',
        reason(error),
        config.database.kind === 'postgres'
          ? 'check DATABASE_URL and that PostgreSQL accepts connections'
          : 'check NEXUS_DATA_DIR is writable',
      );
    }

    if (keys !== undefined && migrated && db !== undefined) {
      const container = buildContainer(config, { keys, db });
      let backendOk = true;
      try {
        await container.secrets.healthCheck();
        add('ok', 'secret backend', `${container.secrets.kind} reachable`);
      } catch (error) {
        const { message, fix } = describeBackendFailure(config.secretBackend, error);
        add('fail', 'secret backend', `${container.secrets.kind}: ${message}`.slice(0, 600), fix);
        backendOk = false;
      }
      const fallback = container.secretsFallback;
      if (fallback !== undefined && config.secretBackendFallback !== undefined) {
        try {
          await fallback.healthCheck();
          add(
            'warn',
            'secret backend',
            `fallback ${fallback.kind} reachable (SECRET_BACKEND_FALLBACK is set)`,
            'unset SECRET_BACKEND_FALLBACK once `nexus secrets migrate` reports every copy read back',
          );
        } catch (error) {
          const { message, fix } = describeBackendFailure(config.secretBackendFallback, error);
          add('fail', 'secret backend', `fallback ${fallback.kind}: ${message}`.slice(0, 600), fix);
        }
      }
      // Live brokers and their rings, and which keys stored ciphertexts use (decision 0013).
      // Values kept in the secret backend are read through it only when it answered.
      try {
        for (const f of await keyRotationFindings({
          db,
          keys,
          brokers: container.brokers,
          ...(backendOk
            ? {
                credentials: container.connectionsMaintenance.keyIds,
                userSecrets: container.userSecretsMaintenance.keyIds,
              }
            : { backendUnread: config.tokenStore === 'secret-backend' }),
          now: Date.now(),
        }))
          add(f.level, f.check, f.message, f.fix);
      } finally {
        await container.secrets.close();
        await fallback?.close();
      }
      const admins = await container.adminKeys.countLive();
      if (admins === 0)
        add(
          'warn',
          'admin keys',
          'no admin API key exists: nobody can use the admin API',
          'run `nexus admin-keys create --name <name>`',
        );
      else add('ok', 'admin keys', `${admins} live admin key(s)`);
    }

    // Listed, not warned: each is a valid choice, but a first start should say what is not there.
    // With keys that could not be read, whether user secrets are on is not known: not claimed off.
    for (const off of featuresOff(config, keys === undefined || keys.userSecretsRing !== undefined))
      add('ok', 'features', describeFeatureOff(off));

    if (config.mode === 'production') {
      if (config.allowedReturnDomains.length === 0)
        add(
          'warn',
          'access',
          'ALLOWED_RETURN_DOMAINS is empty: no consent flow can return to an application',
          'list your application hosts',
        );
      if (config.http.metricsPublic)
        add(
          'warn',
          'access',
          '/metrics is served without authentication',
          'unset NEXUS_METRICS_PUBLIC unless a private network protects it',
        );
    }
    return report(io, findings, json);
  } finally {
    await db?.close();
  }
}

function report(io: Io, findings: readonly Finding[], json: boolean): number {
  const failed = findings.some((f) => f.level === 'fail');
  if (json) io.out(JSON.stringify({ ok: !failed, findings }));
  else {
    const mark = { ok: ' ok ', warn: 'WARN', fail: 'FAIL' } as const;
    for (const f of findings) {
      io.out(`[${mark[f.level]}] ${f.check}: ${f.message}`);
      if (f.fix && f.level !== 'ok') io.out(`       fix: ${f.fix}`);
    }
    io.out(failed ? '\nSome checks failed.' : '\nAll checks passed.');
  }
  return failed ? 1 : 0;
}
