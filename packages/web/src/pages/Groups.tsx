import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { Ago, Empty, ErrorBox, Loading, PageTitle, Section } from '../components';
import { useAction, useLoad } from '../hooks';
import { Link, navigate } from '../router';

export function Groups() {
  const list = useLoad('groups', () => api.groups());
  const [name, setName] = useState('');
  const create = useAction((n: string) => api.createGroup(n));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return;
    const g = await create.run(name.trim());
    if (g) navigate(`/groups/${encodeURIComponent(g.id)}`);
  };

  return (
    <>
      <PageTitle title="Groups">Static groups of devices, to launch an update to all of them at once.</PageTitle>
      <Section title="Create a group">
        <form className="inline" onSubmit={submit}>
          <label htmlFor="g-name">Name</label>
          <input id="g-name" value={name} onChange={(e) => setName(e.target.value)} maxLength={200} placeholder="e.g. test-bench" />
          <button type="submit" disabled={!name.trim() || create.busy}>
            Create group
          </button>
        </form>
        <ErrorBox error={create.error} title="The group was not created." />
      </Section>
      <Section title="All groups">
        <ErrorBox error={list.error} />
        {list.data === undefined ? (
          list.loading ? (
            <Loading />
          ) : null
        ) : list.data.values.length === 0 ? (
          <Empty>No groups yet.</Empty>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Group</th>
                <th scope="col">Devices</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {list.data.values.map((g) => (
                <tr key={g.id}>
                  <td>
                    <Link to={`/groups/${encodeURIComponent(g.id)}`}>{g.name}</Link>
                  </td>
                  <td>{g.size}</td>
                  <td>
                    <Ago iso={g.createdAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
    </>
  );
}
