/**
 * The operator console: sign-in with an admin key (kept in memory, api.ts), then pages over the
 * admin API, chosen by the URL's fragment (#/connections) so the broker serves one page only.
 */
import { render, type VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, type CurrentKey, canWrite, signIn, signOut } from './api.ts';
import { AdminKeysPage } from './pages/admin-keys.ts';
import { AgentsPage } from './pages/agents.ts';
import { AuditPage } from './pages/audit.ts';
import { ConnectionPage } from './pages/connection.ts';
import { ConnectionsPage } from './pages/connections.ts';
import { OverviewPage } from './pages/overview.ts';
import { ProvidersPage } from './pages/providers.ts';
import { SessionsPage } from './pages/sessions.ts';
import { UserSecretsPage } from './pages/user-secrets.ts';
import { WebhooksPage } from './pages/webhooks.ts';
import { ErrorBox, html } from './ui.ts';

/** `full`: the page's data needs a key of scope full (webhook URLs may hold a token; user secrets are agent-facing). */
const PAGES: readonly { path: string; title: string; page: () => VNode; full?: true }[] = [
  { path: '', title: 'Overview', page: () => html`<${OverviewPage} />` },
  { path: 'connections', title: 'Connections', page: () => html`<${ConnectionsPage} />` },
  { path: 'audit', title: 'Audit log', page: () => html`<${AuditPage} />` },
  { path: 'providers', title: 'Providers', page: () => html`<${ProvidersPage} />` },
  { path: 'agents', title: 'Agents', page: () => html`<${AgentsPage} />` },
  { path: 'sessions', title: 'Sessions', page: () => html`<${SessionsPage} />` },
  { path: 'secrets', title: 'User secrets', page: () => html`<${UserSecretsPage} />`, full: true },
  { path: 'webhooks', title: 'Webhooks', page: () => html`<${WebhooksPage} />`, full: true },
  { path: 'keys', title: 'Admin keys', page: () => html`<${AdminKeysPage} />` },
];

const currentPath = () => location.hash.replace(/^#\/?/, '');

function usePath(): string {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const changed = () => setPath(currentPath());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return path;
}

function SignIn({ onSignedIn }: { onSignedIn: (key: CurrentKey) => void }): VNode {
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const key = String(new FormData(form).get('key') ?? '').trim();
    setBusy(true);
    setError(undefined);
    try {
      onSignedIn(await signIn(key));
      form.reset();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'client_error', String(e)));
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin" id="main">
    <h1>Nexus console</h1>
    <form onSubmit=${submit}>
      <div class="field">
        <label for="key">Admin key</label>
        <input id="key" name="key" type="password" required autocomplete="off" spellcheck="false" aria-describedby="key-hint" />
        <small id="key-hint">Kept in this tab's memory only and sent as a header; reloading signs you out.</small>
      </div>
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
    </form>
    <${ErrorBox} error=${error} />
  </main>`;
}

/** A page, remounted when its address (filters included) changes. */
const Page = ({ render }: { render: () => VNode }): VNode => render();

function Shell({ who, onSignOut }: { who: CurrentKey; onSignOut: () => void }): VNode {
  const scope = canWrite() ? 'full' : 'read';
  const path = usePath();
  const [top, ...rest] = (path.split('?')[0] ?? '').split('/');
  const connectionId = top === 'connections' && rest[0] ? decodeURIComponent(rest[0]) : undefined;
  const pages = PAGES.filter((p) => scope === 'full' || p.full !== true);
  const entry = pages.find((p) => p.path === top);
  const page =
    connectionId !== undefined
      ? html`<${ConnectionPage} id=${connectionId} key=${connectionId} />`
      : entry !== undefined
        ? html`<${Page} key=${path} render=${entry.page} />`
        : html`<h1>Not found</h1><p>No page is called “${path}”.</p>`;
  useEffect(() => {
    document.title = `${connectionId !== undefined ? 'Connection' : (entry?.title ?? 'Not found')} · Nexus console`;
  }, [path]);
  return html`<a class="skip" href="#main" onClick=${(e: Event) => {
    e.preventDefault();
    document.getElementById('main')?.focus();
  }}>Skip to content</a>
  <header class="top">
    <span class="brand">Nexus console</span>
    <span class="who"><span class="key-name">${who.name}</span> · ${scope === 'read' ? html`<span class="badge badge-readonly">read-only key</span>` : 'full-access key'}</span>
    <button type="button" onClick=${onSignOut}>Sign out</button>
  </header>
  <nav aria-label="Console">
    <ul>${pages.map(
      (p) =>
        html`<li><a href=${`#/${p.path}`} aria-current=${p.path === top ? 'page' : undefined}>${p.title}</a></li>`,
    )}</ul>
  </nav>
  <main id="main" tabindex="-1">${page}</main>`;
}

function App(): VNode {
  const [who, setWho] = useState<CurrentKey | undefined>();
  if (who === undefined) return html`<${SignIn} onSignedIn=${setWho} />`;
  return html`<${Shell}
    who=${who}
    onSignOut=${() => {
      signOut();
      setWho(undefined);
    }}
  />`;
}

const root = document.getElementById('app');
if (root !== null) {
  root.textContent = '';
  render(html`<${App} />`, root);
}
