'use strict'
// Certificates for the TLS tests, made with the openssl CLI in a temporary
// directory: a CA, certificates it signs, and another CA that signed nothing.

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

function openssl(dir, ...args) {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
  if (r.error && r.error.code === 'ENOENT') throw new Error('the TLS tests need the openssl CLI (apt-get install -y openssl)')
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.stderr}`)
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

/**
 * In `dir`: `ca` and `other` (a CA that signed nothing here); `server`
 * (127.0.0.1, localhost), `named` (only the name redis.test, for a
 * servername that is not the host connected to), both also valid as TLS
 * clients (redis-server connects to its peers with its own certificate),
 * and `client` (mutual TLS).
 */
function makeCertificates(dir) {
  for (const ca of ['ca', 'other']) {
    openssl(dir, 'req', '-x509', ...EC, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=keyed-lock test ${ca}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  }
  const leaf = (name, ext) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext)
    openssl(dir, 'req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`,
      '-days', '2', '-extfile', `${name}.ext`)
  }
  leaf('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n')
  leaf('named', 'subjectAltName=DNS:redis.test\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n')
  leaf('client', 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n')
  const read = (f) => fs.readFileSync(path.join(dir, f))
  return {
    dir,
    ca: read('ca.crt'),
    other: read('other.crt'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
  }
}

/** redis-server arguments for a TLS port beside the plain one, with `cert` (server or named) and the test CA. */
function tlsArgs(certs, tlsPort, { cert = 'server', authClients = false } = {}) {
  return [
    '--tls-port', String(tlsPort),
    '--tls-cert-file', path.join(certs.dir, `${cert}.crt`),
    '--tls-key-file', path.join(certs.dir, `${cert}.key`),
    '--tls-ca-cert-file', path.join(certs.dir, 'ca.crt'),
    '--tls-auth-clients', authClients ? 'yes' : 'no',
  ]
}

module.exports = { makeCertificates, tlsArgs }
