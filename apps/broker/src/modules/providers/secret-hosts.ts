import { connectionParameters, fill, placeholdersIn } from './connection-params.ts';

/** Hosts no provider owns: a pattern that lets a requester name one lets it name any. */
const FOREIGN_HOSTS = ['attacker.example', 'nexus-probe.com', 'a.nexus-probe.com'] as const;

/** The URLs the broker sends the provider's client secret to (and, at a refresh, refresh tokens). */
const SECRET_URLS = ['token_url', 'params.revocation_endpoint'] as const;

export interface SecretHostParameter {
  /** The URL field (`token_url`, `params.revocation_endpoint`). */
  readonly path: (typeof SECRET_URLS)[number];
  /** The connection parameter whose value can make that URL's host any host. */
  readonly name: string;
}

/**
 * The connection parameters (values whoever requests a connection gives) that can choose the host
 * of a URL the client secret is sent to: `https://{domain}/oauth/token` with a `domain` pattern
 * any host name matches would send the operator's client secret to the requester's server
 * (2026-12-07 review). A value inside a host followed by the provider's own domain
 * (`https://{shop}.myshopify.com`) cannot, nor can one whose pattern pins the domain
 * (`^[a-z0-9-]+\.okta\.com$`). Tried with host names no provider owns, not proven: the operator
 * who writes a pattern owns it. Values learnt at consent come from the provider and are not asked.
 */
export function secretHostParameters(profile: {
  token_url?: string | undefined;
  params: Record<string, unknown>;
}): SecretHostParameter[] {
  const declared = connectionParameters(profile.params);
  const revocation = profile.params.revocation_endpoint;
  const urls: Record<SecretHostParameter['path'], string | undefined> = {
    token_url: profile.token_url,
    'params.revocation_endpoint': typeof revocation === 'string' ? revocation : undefined,
  };
  const found: SecretHostParameter[] = [];
  for (const path of SECRET_URLS) {
    const template = urls[path];
    if (template === undefined) continue;
    const names = placeholdersIn(template);
    // The other placeholders filled with a plain label, as the URL checks fill them.
    const others = Object.fromEntries(names.map((n) => [n, 'example']));
    for (const name of new Set(names)) {
      const spec = declared[name];
      if (spec === undefined || typeof spec.pattern !== 'string') continue;
      let pattern: RegExp;
      try {
        pattern = new RegExp(spec.pattern, 'u');
      } catch {
        continue; // refused on its own by the declaration checks
      }
      const foreign = FOREIGN_HOSTS.some((host) => {
        const value = template.startsWith(`{${name}}`) ? `https://${host}` : host;
        if (!pattern.test(value)) return false;
        const hostname = URL.parse(fill(template, { ...others, [name]: value }))?.hostname;
        return hostname !== undefined && (hostname === host || hostname.endsWith(`.${host}`));
      });
      if (foreign) found.push({ path, name });
    }
  }
  return found;
}
