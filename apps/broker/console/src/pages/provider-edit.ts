/**
 * Editing one provider: `PATCH /providers/{id}` with the fields changed, and `If-Match` the
 * version read (a change made meanwhile is refused with 409, not overwritten). The client secret
 * is never shown: the profile only says whether one is stored, and a new one can replace it.
 */
import type { VNode } from 'preact';
import { api } from '../api.ts';
import type { Provider } from '../types.ts';
import { ErrorBox, Field, formValues, html, items, Loaded, Notice, useAction, useLoad } from '../ui.ts';

/** Text fields of the form, as the profile names them. */
const TEXT = ['description', 'issuer', 'auth_url', 'token_url', 'client_id', 'api_base_url'] as const;
const LABELS: Record<(typeof TEXT)[number], string> = {
  description: 'Description',
  issuer: 'Issuer',
  auth_url: 'Authorization URL',
  token_url: 'Token URL',
  client_id: 'Client id',
  api_base_url: 'API base URL',
};
const OAUTH_ONLY = new Set(['issuer', 'auth_url', 'token_url', 'client_id']);

/** What changed: a field emptied is cleared (null), an unchanged one is left out. */
function changes(p: Provider, v: Record<string, string>): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const k of TEXT) {
    if (!(k in v)) continue;
    const now = v[k]!.trim();
    if (now !== (p[k] ?? '')) patch[k] = now === '' ? null : now;
  }
  if ('scopes' in v) {
    const scopes = items(v.scopes!);
    if (scopes.join(' ') !== (p.scopes ?? []).join(' ')) patch.scopes = scopes;
  }
  if (v.client_secret) patch.client_secret = v.client_secret;
  return patch;
}

export function EditProvider({
  id,
  onSaved,
  onClose,
}: {
  id: string;
  onSaved: () => void;
  onClose: () => void;
}): VNode {
  const [load, reload] = useLoad(() => api<Provider>('GET', `/providers/${id}`), [id]);
  const action = useAction();
  const save = (p: Provider) => (event: Event) => {
    const v = formValues(event);
    const patch = changes(p, v);
    const form = event.currentTarget as HTMLFormElement;
    return action.run(async () => {
      if (Object.keys(patch).length === 0) return 'Nothing changed.';
      await api('PATCH', `/providers/${id}`, { body: patch, headers: { 'if-match': `"${p.version}"` } });
      // The secret leaves the page now, not when the reloaded profile redraws the form.
      const secret = form.elements.namedItem('client_secret');
      if (secret instanceof HTMLInputElement) secret.value = '';
      reload();
      onSaved();
      return `Provider ${p.name} saved (${Object.keys(patch)
        .map((k) => (k === 'client_secret' ? 'client secret replaced' : k))
        .join(', ')}).`;
    });
  };
  return html`<section class="panel" aria-labelledby="edit-title">
    <${Loaded} load=${load} render=${(p: Provider) => {
      const oauth = p.auth_type === undefined || p.auth_type === 'oauth2';
      return html`<h2 id="edit-title">Edit ${p.name}</h2>
      <form onSubmit=${save(p)} aria-label=${`Edit provider ${p.name}`} key=${p.version}>
        ${TEXT.filter((k) => oauth || !OAUTH_ONLY.has(k)).map(
          (k) =>
            html`<${Field} id=${`e-${k}`} label=${LABELS[k]}><input id=${`e-${k}`} name=${k} maxlength=${k === 'description' ? 1000 : 2048} value=${p[k] ?? ''} autocomplete="off" /></${Field}>`,
        )}
        ${
          oauth &&
          html`<${Field} id="e-scopes" label="Default scopes" hint="Separated by spaces."><input id="e-scopes" name="scopes" maxlength="4000" value=${(p.scopes ?? []).join(' ')} aria-describedby="e-scopes-hint" /></${Field}>
          <p class="muted">Client secret: ${p.has_client_secret ? 'stored (never shown)' : 'none stored'}.</p>
          <${Field} id="e-client-secret" label="Replace the client secret" hint="Leave empty to keep the stored one."><input id="e-client-secret" name="client_secret" type="password" maxlength="16384" autocomplete="off" aria-describedby="e-client-secret-hint" /></${Field}>`
        }
        <div class="actions">
          <button type="submit" class="primary" disabled=${action.busy}>Save</button>
          <button type="button" onClick=${onClose}>Close</button>
        </div>
      </form>`;
    }} />
    <${Notice} message=${action.message} />
    <${ErrorBox} error=${action.error} />
  </section>`;
}
