import { useEffect, useState, type FormEvent } from 'react';
import { api, type Image, type LaunchResult } from '../api';
import { DeviceStatusBadge, ErrorBox, Loading, Notice, PageTitle, Section } from '../components';
import { formatBytes, notAffectedReason } from '../format';
import { useAction, useDebounced, useLoad } from '../hooks';
import { Link, navigate, useLocation } from '../router';

type Mode = 'devices' | 'group';

function imageLabel(i: Image): string {
  const nv = i.name ? `${i.name} ${i.version ?? ''}`.trim() : i.filename;
  return `${nv} — ${i.filename} (${i.hardwareIds.join(', ')}; ${formatBytes(i.length)})`;
}

export function NewUpdate() {
  const { search } = useLocation();
  const [image, setImage] = useState(search.get('image') ?? '');
  const [mode, setMode] = useState<Mode>(search.get('group') ? 'group' : 'devices');
  const [devices, setDevices] = useState<string[]>(() => (search.get('devices') ?? '').split(',').filter(Boolean));
  const [group, setGroup] = useState(search.get('group') ?? '');
  const [name, setName] = useState('');
  const [invalid, setInvalid] = useState<string | undefined>();

  const images = useLoad('images-for-update', () => api.images({ limit: 1000 }));
  const groups = useLoad('groups', () => api.groups());

  const dry = useAction((body: Parameters<typeof api.launch>[0]) => api.launch({ ...body, dryRun: true }));
  const launch = useAction((body: Parameters<typeof api.launch>[0]) => api.launch(body));
  const resetDry = dry.reset;
  // A dry run answers for the choices it was made with.
  useEffect(() => resetDry(), [image, mode, devices, group, resetDry]);

  const body = (): Parameters<typeof api.launch>[0] | undefined => {
    const problem = !image
      ? 'Choose an image.'
      : mode === 'devices' && devices.length === 0
        ? 'Choose at least one device.'
        : mode === 'group' && !group
          ? 'Choose a group.'
          : undefined;
    setInvalid(problem);
    if (problem) return undefined;
    return { image, ...(mode === 'devices' ? { devices } : { group }), ...(name.trim() ? { name: name.trim() } : {}) };
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const b = body();
    if (!b) return;
    const res = await launch.run(b);
    if (res) navigate(`/updates/${res.id}`, { state: { launched: res } });
  };

  const selectedImage = images.data?.values.find((i) => i.filename === image);
  return (
    <>
      <PageTitle title="New update">
        Send an image to devices. The Director assigns it to every ECU whose hardware id the image is built for; the devices verify it before installing.
      </PageTitle>
      <form onSubmit={submit} noValidate className="stack">
        <Section title="1. Image">
          <ErrorBox error={images.error} />
          {images.data === undefined ? (
            images.loading ? (
              <Loading />
            ) : null
          ) : images.data.total === 0 ? (
            <p>
              No images yet. <Link to="/images">Upload one first.</Link>
            </p>
          ) : (
            <div className="field">
              <label htmlFor="nu-image">Image</label>
              <select id="nu-image" value={image} onChange={(e) => setImage(e.target.value)}>
                <option value="">Choose an image…</option>
                {images.data.values.map((i) => (
                  <option key={i.filename} value={i.filename}>
                    {imageLabel(i)}
                  </option>
                ))}
              </select>
              {selectedImage ? (
                <small>
                  Built for <strong>{selectedImage.hardwareIds.join(', ')}</strong>
                  {selectedImage.releaseCounter !== null ? `, release counter ${selectedImage.releaseCounter}` : ''}.
                </small>
              ) : null}
            </div>
          )}
        </Section>

        <Section title="2. Devices">
          <fieldset className="radios">
            <legend className="visually-hidden">Update</legend>
            <label>
              <input type="radio" name="mode" value="devices" checked={mode === 'devices'} onChange={() => setMode('devices')} /> Chosen devices
            </label>
            <label>
              <input type="radio" name="mode" value="group" checked={mode === 'group'} onChange={() => setMode('group')} /> A group
            </label>
          </fieldset>
          {mode === 'devices' ? (
            <DevicePicker selected={devices} onChange={setDevices} />
          ) : (
            <div className="field">
              <label htmlFor="nu-group">Group</label>
              <select id="nu-group" value={group} onChange={(e) => setGroup(e.target.value)}>
                <option value="">Choose a group…</option>
                {(groups.data?.values ?? []).map((g) => (
                  <option key={g.id} value={g.name}>
                    {g.name} ({g.size} device{g.size === 1 ? '' : 's'})
                  </option>
                ))}
              </select>
              {groups.data && groups.data.values.length === 0 ? (
                <small>
                  No groups yet: <Link to="/groups">create one</Link>.
                </small>
              ) : null}
            </div>
          )}
        </Section>

        <Section title="3. Check and launch">
          <div className="field">
            <label htmlFor="nu-name">Name (optional)</label>
            <input
              id="nu-name"
              value={name}
              onChange={(e) => setName(e.target.value)}
              placeholder={selectedImage ? `${selectedImage.name}@${selectedImage.version}` : ''}
            />
          </div>
          {invalid ? (
            <p className="field-error" role="alert">
              {invalid}
            </p>
          ) : null}
          <div className="form-actions">
            <button
              type="button"
              className="secondary"
              disabled={dry.busy}
              onClick={() => {
                const b = body();
                if (b) void dry.run(b);
              }}
            >
              {dry.busy ? 'Checking…' : 'Check who would be updated'}
            </button>
            <button type="submit" disabled={launch.busy}>
              {launch.busy ? 'Launching…' : 'Launch update'}
            </button>
          </div>
          <ErrorBox error={dry.error} title="The check failed." />
          <ErrorBox error={launch.error} title="The update was not launched." />
          {dry.result ? <Affected result={dry.result} dryRun /> : null}
        </Section>
      </form>
    </>
  );
}

/** Who an update reaches and, for the others, why not. */
export function Affected({ result, dryRun }: { result: LaunchResult; dryRun?: boolean }) {
  return (
    <div className="affected" aria-live="polite">
      {result.affected.length > 0 ? (
        <Notice kind="success">
          {dryRun ? 'Would update' : 'Assigned to'} <strong>{result.affected.length}</strong> device{result.affected.length === 1 ? '' : 's'}:{' '}
          {result.affected.map((d, i) => (
            <span key={d}>
              {i > 0 ? ', ' : ''}
              <Link to={`/devices/${encodeURIComponent(d)}`}>{d}</Link>
            </span>
          ))}
          .
        </Notice>
      ) : (
        <Notice kind="warning">{dryRun ? 'No device would be updated.' : 'No device was updated.'}</Notice>
      )}
      {result.notAffected.length > 0 ? (
        <div className="not-affected">
          <h3>{dryRun ? 'Would not be updated' : 'Not included'}</h3>
          <ul>
            {result.notAffected.map((n) => (
              <li key={n.device}>
                <Link to={`/devices/${encodeURIComponent(n.device)}`}>{n.device}</Link>: {notAffectedReason(n.reason)}{' '}
                <span className="muted small">({n.reason})</span>
              </li>
            ))}
          </ul>
        </div>
      ) : null}
    </div>
  );
}

function DevicePicker({ selected, onChange }: { selected: string[]; onChange: (d: string[]) => void }) {
  const [text, setText] = useState('');
  const q = useDebounced(text.trim(), 250);
  const found = useLoad(`pick?${q}`, (signal) => api.devices({ nameContains: q || undefined, limit: 10 }, signal));
  const chosen = new Set(selected);
  const toggle = (id: string) => onChange(chosen.has(id) ? selected.filter((d) => d !== id) : [...selected, id]);
  return (
    <div className="picker">
      {selected.length > 0 ? (
        <ul className="chips" aria-label="Chosen devices">
          {selected.map((d) => (
            <li key={d}>
              <span className="mono">{d}</span>
              <button type="button" className="chip-x" aria-label={`Remove ${d}`} onClick={() => toggle(d)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">No device chosen yet.</p>
      )}
      <div className="field">
        <label htmlFor="nu-find">Find devices</label>
        <input id="nu-find" type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="Name contains…" />
      </div>
      <ErrorBox error={found.error} />
      {found.data ? (
        found.data.values.length === 0 ? (
          <p className="muted">No device matches.</p>
        ) : (
          <ul className="pick-list">
            {found.data.values.map((d) => (
              <li key={d.deviceId}>
                <label>
                  <input type="checkbox" checked={chosen.has(d.deviceId)} onChange={() => toggle(d.deviceId)} />
                  <span className="mono">{d.deviceId}</span>
                  {d.deviceName !== d.deviceId ? <span className="muted"> {d.deviceName}</span> : null}
                  <DeviceStatusBadge status={d.deviceStatus} />
                </label>
              </li>
            ))}
            {found.data.total > found.data.values.length ? (
              <li className="muted small">
                {found.data.total - found.data.values.length} more: narrow the search (or update a <Link to="/groups">group</Link>).
              </li>
            ) : null}
          </ul>
        )
      ) : null}
    </div>
  );
}
