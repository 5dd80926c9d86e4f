// `npm start`: brings up the whole system on embedded defaults.
// Until the server package exists this only says what is coming.
console.log('Uptide: the server (admin API on http://127.0.0.1:8080, device gateway on https://127.0.0.1:8443) is being built; see README.md.');
