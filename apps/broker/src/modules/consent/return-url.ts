/**
 * Where a consent flow may send the user back to. Exact hosts and `*.suffix` patterns from
 * ALLOWED_RETURN_DOMAINS; `localhost`/loopback only in development. Checked when the flow starts
 * and again before redirecting (the list may have changed in between).
 */
export function returnUrlAllowed(
  raw: string,
  options: {
    allowedDomains: readonly string[];
    allowLoopback: boolean;
    requireHttps: boolean;
    /**
     * The broker's own page that ends a hosted connect session (`<BASE_URL>/connect/finish`,
     * modules/connect): always allowed, whatever the list says. It shows the outcome of the session
     * it names, read from the database, so reaching it from another flow changes nothing.
     */
    own?: string | undefined;
  },
): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  if (url.username || url.password) return false;
  if (options.own !== undefined && `${url.origin}${url.pathname}` === options.own) return true;
  const host = url.hostname.toLowerCase();
  const loopback = host === 'localhost' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
  if (loopback) return options.allowLoopback && (url.protocol === 'http:' || url.protocol === 'https:');
  if (url.protocol !== 'https:' && (options.requireHttps || url.protocol !== 'http:')) return false;
  return options.allowedDomains.some((pattern) =>
    pattern.startsWith('*.')
      ? host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1
      : host === pattern,
  );
}

/** Appends the outcome to the return URL, keeping its own query parameters. */
export function withOutcome(returnUrl: string, outcome: Record<string, string>): string {
  const url = new URL(returnUrl);
  for (const [key, value] of Object.entries(outcome)) url.searchParams.set(key, value);
  return url.toString();
}
