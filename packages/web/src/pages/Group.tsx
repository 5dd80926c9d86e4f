import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { Ago, ConfirmButton, Empty, ErrorBox, Loading, PageTitle, Section } from '../components';
import { useAction, useDebounced, useLoad } from '../hooks';
import { Link, navigate } from '../router';

export function GroupPage({ id }: { id: string }) {
  const group = useLoad(`group:${id}`, () => api.group(id));
  const [text, setText] = useState('');
  const q = useDebounced(text.trim(), 200);
  const suggestions = useLoad(q ? `suggest?${q}` : null, (signal) => api.devices({ nameContains: q, limit: 10 }, signal));
  const add = useAction(async (device: string) => {
    await api.addToGroup(id, device);
    setText('');
    group.reload();
  });
  const remove = useAction(async (device: string) => {
    await api.removeFromGroup(id, device);
    group.reload();
  });
  const del = useAction(async () => {
    await api.deleteGroup(id);
    navigate('/groups');
  });

  const g = group.data;
  if (!g)
    return (
      <>
        <PageTitle title="Group" />
        <ErrorBox error={group.error} title="Could not load the group." />
        {group.loading ? <Loading /> : null}
      </>
    );

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (text.trim()) void add.run(text.trim());
  };
  const members = new Set(g.devices);
  return (
    <>
      <PageTitle
        title={g.name}
        actions={
          <>
            <ConfirmButton label="Delete group" confirm="Delete this group? Its devices stay." busy={del.busy} onConfirm={() => void del.run()} />
            <Link to={`/updates/new?group=${encodeURIComponent(g.name)}`} className="button">
              Update this group
            </Link>
          </>
        }
      >
        {g.devices.length} device{g.devices.length === 1 ? '' : 's'} · created <Ago iso={g.createdAt} />
      </PageTitle>
      <ErrorBox error={del.error} title="The group was not deleted." />
      <Section title="Add a device">
        <form className="inline" onSubmit={submit}>
          <label htmlFor="g-add">Device id</label>
          <input id="g-add" value={text} onChange={(e) => setText(e.target.value)} list="g-suggest" autoComplete="off" spellCheck={false} />
          <datalist id="g-suggest">
            {(suggestions.data?.values ?? [])
              .filter((d) => !members.has(d.deviceId))
              .map((d) => (
                <option key={d.deviceId} value={d.deviceId}>
                  {d.deviceName}
                </option>
              ))}
          </datalist>
          <button type="submit" disabled={!text.trim() || add.busy}>
            Add to group
          </button>
        </form>
        <ErrorBox error={add.error} title="The device was not added." />
      </Section>
      <Section title="Devices">
        <ErrorBox error={remove.error} title="The device was not removed." />
        {g.devices.length === 0 ? (
          <Empty>No devices in this group yet.</Empty>
        ) : (
          <ul className="members">
            {g.devices.map((d) => (
              <li key={d}>
                <Link to={`/devices/${encodeURIComponent(d)}`} className="mono">
                  {d}
                </Link>
                <button
                  type="button"
                  className="secondary small"
                  disabled={remove.busy}
                  onClick={() => void remove.run(d)}
                  aria-label={`Remove ${d} from the group`}
                >
                  Remove
                </button>
              </li>
            ))}
          </ul>
        )}
      </Section>
    </>
  );
}
