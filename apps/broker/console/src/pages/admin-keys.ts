/** Admin keys: the list (never their values), create (the key shown once), revoke. */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api, canWrite } from '../api.ts';
import type { AdminKey } from '../types.ts';
import {
  ConfirmButton,
  ErrorBox,
  Field,
  formValues,
  html,
  Loaded,
  Notice,
  PageTitle,
  ShownOnce,
  Table,
  useAction,
  useLoad,
  when,
} from '../ui.ts';

export function AdminKeysPage(): VNode {
  const [withRevoked, setWithRevoked] = useState(false);
  const [load, reload] = useLoad(
    () => api<AdminKey[]>('GET', '/admin/v1/admin-keys', { query: { include_revoked: String(withRevoked) } }),
    [withRevoked],
  );
  const action = useAction();
  const [created, setCreated] = useState<{ name: string; key: string } | undefined>();
  const writable = canWrite();
  const create = (event: Event) => {
    const v = formValues(event);
    const form = event.currentTarget as HTMLFormElement;
    return action.run(async () => {
      const key = await api<AdminKey & { key: string }>('POST', '/admin/v1/admin-keys', {
        body: { name: v.name, scope: v.scope },
      });
      form.reset();
      setCreated({ name: key.name, key: key.key });
      reload();
      return `Key ${key.name} created.`;
    });
  };
  const revoke = (k: AdminKey) =>
    action.run(async () => {
      await api('DELETE', `/admin/v1/admin-keys/${k.id}`);
      reload();
      return `Key ${k.name} revoked.`;
    });
  return html`<${PageTitle}>Admin keys</${PageTitle}>
    <p class="muted">Keys from the API_KEYS setting are not stored and are not listed here.</p>
    ${
      writable &&
      html`<details class="panel">
      <summary>Create an admin key</summary>
      <form onSubmit=${create} aria-label="Create an admin key">
        <${Field} id="k-name" label="Name"><input id="k-name" name="name" required maxlength="64" pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]*" /></${Field}>
        <${Field} id="k-scope" label="Scope">
          <select id="k-scope" name="scope">
            <option value="read">read: the admin API's GET routes</option>
            <option value="full">full: every route</option>
            <option value="agent">agent: the agent-facing API</option>
          </select>
        </${Field}>
        <button type="submit" class="primary" disabled=${action.busy}>Create</button>
      </form>
      ${created && html`<${ShownOnce} label=${`Admin key ${created.name}.`} value=${created.key} />`}
    </details>`
    }
    <${Notice} message=${action.message} />
    <${ErrorBox} error=${action.error} />
    <div class="field check">
      <input id="k-revoked" type="checkbox" checked=${withRevoked} onChange=${(e: Event) => setWithRevoked((e.target as HTMLInputElement).checked)} />
      <label for="k-revoked">Show revoked keys</label>
    </div>
    <${Loaded} load=${load} render=${(keys: AdminKey[]) => html`<${Table}
      caption="Admin keys"
      head=${['Name', 'Scope', 'Created', 'Created by', 'Last used', 'Revoked', ...(writable ? [''] : [])]}
      rows=${keys.map((k) => [
        k.name,
        k.scope,
        when(k.created_at),
        k.created_by,
        when(k.last_used_at),
        when(k.revoked_at),
        ...(writable
          ? [
              k.revoked_at === null
                ? html`<${ConfirmButton} label=${`Revoke ${k.name}`} confirmLabel="Yes, revoke" disabled=${action.busy} onConfirm=${() => revoke(k)} />`
                : '',
            ]
          : []),
      ])}
      empty="No stored admin key."
    />`}
    />`;
}
