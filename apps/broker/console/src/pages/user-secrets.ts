/** User secrets: the metadata of one user's secrets and their versions, never a value. */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Field, formValues, html, Loaded, PageTitle, Table, useLoad, when } from '../ui.ts';

interface UserSecret {
  name: string;
  zone: string;
  description: string;
  current_version: number;
  enabled: boolean;
  deleted: boolean;
  created_at: string;
  updated_at: string;
}

function Versions({ user, zone, name }: { user: string; zone: string; name: string }): VNode {
  const [load] = useLoad(
    () =>
      api<{ versions: { version: number; created_at: string; created_by: string }[] }>(
        'GET',
        `/admin/v1/user-secrets/${encodeURIComponent(name)}/versions`,
        { query: { user_id: user, zone } },
      ),
    [name],
  );
  return html`<section class="panel" aria-labelledby="versions">
    <h2 id="versions">Versions of ${name}</h2>
    <${Loaded} load=${load} render=${({
      versions,
    }: {
      versions: { version: number; created_at: string; created_by: string }[];
    }) => html`<${Table}
      caption=${`Versions of ${name}`}
      head=${['Version', 'Created', 'Created by']}
      rows=${versions.map((v) => [String(v.version), when(v.created_at), v.created_by])}
      empty="No version."
    />`}
    />
  </section>`;
}

function SecretList({ user, zone }: { user: string; zone: string }): VNode {
  const [open, setOpen] = useState<string | undefined>();
  const [load] = useLoad(
    () =>
      api<{ secrets: UserSecret[] }>('GET', '/admin/v1/user-secrets', {
        query: { user_id: user, zone, include_deleted: 'true' },
      }),
    [user, zone],
  );
  return html`<${Loaded} load=${load} render=${({ secrets }: { secrets: UserSecret[] }) => html`<${Table}
    caption=${`Secrets of ${user} in zone ${zone}`}
    head=${['Name', 'Description', 'Version', 'Enabled', 'Deleted', 'Updated', '']}
    rows=${secrets.map((s) => [
      s.name,
      s.description || '—',
      String(s.current_version),
      s.enabled ? 'yes' : 'no',
      s.deleted ? 'yes' : 'no',
      when(s.updated_at),
      html`<button type="button" aria-expanded=${open === s.name} onClick=${() => setOpen(open === s.name ? undefined : s.name)}>
        Versions<span class="sr-only"> of ${s.name}</span></button>`,
    ])}
    empty="This user has no secret in this zone."
  />
  ${open !== undefined && html`<${Versions} key=${open} user=${user} zone=${zone} name=${open} />`}`}
  />`;
}

export function UserSecretsPage(): VNode {
  const [owner, setOwner] = useState<{ user: string; zone: string } | undefined>();
  return html`<${PageTitle}>User secrets</${PageTitle}>
    <p class="muted">Names, versions and states only: values are never read here. Listing needs a key of scope “full”.</p>
    <form class="filters" aria-label="Choose a user" onSubmit=${(e: Event) => {
      const v = formValues(e);
      setOwner({ user: v.user_id?.trim() ?? '', zone: v.zone?.trim() || 'default' });
    }}>
      <${Field} id="s-user" label="User"><input id="s-user" name="user_id" required maxlength="200" /></${Field}>
      <${Field} id="s-zone" label="Zone"><input id="s-zone" name="zone" maxlength="64" placeholder="default" pattern="[a-z0-9_\\-]{1,64}" /></${Field}>
      <button type="submit" class="primary">Show</button>
    </form>
    ${owner && html`<${SecretList} key=${`${owner.user}/${owner.zone}`} user=${owner.user} zone=${owner.zone} />`}`;
}
