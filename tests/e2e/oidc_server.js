// A local OpenID Connect provider for the sign-in tests (npm oauth2-mock-server, loopback only).
//
//   OIDC_CLAIMS='{"sub": "...", "email": "...", "name": "...", "<roles claim>": ["cloud-provider"]}' \
//   OIDC_AUDIENCE=https://api.example node tests/e2e/oidc_server.js [port]
//
// Prints one JSON line {"issuer": "http://127.0.0.1:<port>"} once it listens (port 0: any free port).
// It approves every authorization request at once (no login form), like a person who is already signed
// in at the provider. Every token it signs gets the claims above; access tokens (no `aud` yet) get
// OIDC_AUDIENCE as their audience, so the app's API accepts them as it would Auth0's.

'use strict';

async function main() {
  const { OAuth2Server } = await import('oauth2-mock-server');
  const port = Number(process.argv[2] || process.env.OIDC_PORT || 0);
  const claims = JSON.parse(process.env.OIDC_CLAIMS || '{}');
  const audience = process.env.OIDC_AUDIENCE || '';

  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  await server.start(port, '127.0.0.1');
  // the issuer URL must be the address the app reaches (it would say "localhost" otherwise)
  server.issuer.url = `http://127.0.0.1:${server.address().port}`;

  server.service.on('beforeTokenSigning', (token) => {
    Object.assign(token.payload, claims);
    // ID tokens already carry the client id as audience; access tokens get the API's
    if (token.payload.aud === undefined && audience) {
      token.payload.aud = audience;
    }
  });

  const stop = async () => {
    await server.stop();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(JSON.stringify({ issuer: server.issuer.url }) + '\n');
}

main().catch((error) => {
  process.stderr.write(`oidc_server failed: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
