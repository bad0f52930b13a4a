export interface Problem {
  path: string;
  message: string;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

/** Absolute https URL without credentials or fragment; http only for loopback outside production. */
export function checkWebhookUrl(value: string, allowLoopbackHttp: boolean): Problem[] {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return [{ path: 'url', message: 'must be an absolute URL' }];
  }
  const problems: Problem[] = [];
  if (url.username || url.password) problems.push({ path: 'url', message: 'must not contain credentials' });
  if (url.hash) problems.push({ path: 'url', message: 'must not contain a fragment' });
  if (url.protocol === 'https:') return problems;
  if (url.protocol === 'http:' && allowLoopbackHttp && LOOPBACK.test(url.hostname)) return problems;
  problems.push({
    path: 'url',
    message: allowLoopbackHttp
      ? 'must use https (http is allowed only for localhost in development)'
      : 'must use https',
  });
  return problems;
}
