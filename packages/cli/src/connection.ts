/**
 * Which broker and which admin key: flags, then a named profile (`--profile` or NEXUS_PROFILE), then
 * the environment (NEXUS_URL or the original BROKER_BASE_URL; API_KEY or NEXUS_API_KEY), then the
 * config file's default profile. Profiles live in `$XDG_CONFIG_HOME/nexus/config.json` (else
 * `~/.config/nexus/config.json`), written with mode 0600 because they hold API keys.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from './io.ts';

export interface Profile {
  url: string;
  api_key: string;
}

export interface ConfigFile {
  default_profile?: string;
  profiles: Record<string, Profile>;
}

export interface Connection {
  url: string;
  apiKey: string;
  /** Where the settings came from, for messages (never the key). */
  source: string;
}

type Env = Readonly<Record<string, string | undefined>>;
const set = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v.trim());

export function configPath(env: Env): string {
  const base = set(env.XDG_CONFIG_HOME) ?? join(set(env.HOME) ?? homedir(), '.config');
  return join(base, 'nexus', 'config.json');
}

export function readConfig(env: Env): ConfigFile {
  const path = configPath(env);
  if (!existsSync(path)) return { profiles: {} };
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as ConfigFile;
    return { ...parsed, profiles: parsed.profiles ?? {} };
  } catch {
    throw new CliError(`${path} is not valid JSON; fix or remove it`);
  }
}

/** Writes the config file atomically, readable only by the user (0600, directory 0700). */
export function writeConfig(env: Env, config: ConfigFile): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
}

export function resolveConnection(env: Env, flags: { url?: string; profile?: string }): Connection {
  const profileName = set(flags.profile) ?? set(env.NEXUS_PROFILE);
  if (profileName !== undefined) {
    const profile = readConfig(env).profiles[profileName];
    if (!profile)
      throw new CliError(
        `no profile "${profileName}" in ${configPath(env)}; create it with: nexus login --url URL --profile ${profileName}`,
      );
    return { url: set(flags.url) ?? profile.url, apiKey: profile.api_key, source: `profile ${profileName}` };
  }
  const url = set(flags.url) ?? set(env.NEXUS_URL) ?? set(env.BROKER_BASE_URL);
  // NEXUS_API_KEY is ours; API_KEY (the original's name) is generic and may belong to something else.
  const apiKey = set(env.NEXUS_API_KEY) ?? set(env.API_KEY);
  if (apiKey !== undefined) return { url: url ?? 'http://localhost:8080', apiKey, source: 'environment' };
  const config = readConfig(env);
  const fallback = config.default_profile ?? (config.profiles.default ? 'default' : undefined);
  const profile = fallback === undefined ? undefined : config.profiles[fallback];
  if (profile) {
    // A profile's key goes only to that profile's broker: another URL needs its own key.
    if (url !== undefined && url.replace(/\/+$/, '') !== profile.url.replace(/\/+$/, ''))
      throw new CliError(
        `the URL ${url} is not the one of profile "${fallback}" (${profile.url}); give its key in NEXUS_API_KEY, or use --profile`,
      );
    return { url: profile.url, apiKey: profile.api_key, source: `profile ${fallback}` };
  }
  throw new CliError(
    'no broker credentials: set NEXUS_URL and API_KEY (or NEXUS_API_KEY), or run `nexus login --url URL` to store a profile',
  );
}
