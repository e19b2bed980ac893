// A bittorrent-dht node on loopback for the DHT integration tests (driven by dhtnodes.py).
//   node dhtnode.mjs IP BOOTSTRAP|-        (BOOTSTRAP: comma-separated IP:PORT; never a router
//                                           on the internet: '-' means none at all)
// Prints 'listening IP:PORT', then 'ready'. Commands on stdin, one a line:
//   announce HASH PORT  -> 'announced HASH ok' (or 'announced HASH error MESSAGE')
//   lookup HASH         -> 'found HASH IP:PORT ...' (every peer the lookup saw)
//   nodes               -> 'nodes IP:PORT ...' (its routing table)
// It exits when stdin closes, so it never outlives the test that started it.
import DHT from 'bittorrent-dht'
import readline from 'node:readline'

const [ip, boot] = process.argv.slice(2)
const bootstrap = boot && boot !== '-' ? boot.split(',') : false
const dht = new DHT({ bootstrap, host: false })
const say = (line) => process.stdout.write(line + '\n')

dht.on('error', (err) => { say('error ' + String(err.message).replace(/\n/g, ' ')); process.exit(1) })
dht.on('warning', (err) => process.stderr.write('warning ' + err.message + '\n'))
dht.on('ready', () => say('ready'))
dht.listen(0, ip, () => say('listening ' + ip + ':' + dht.address().port))

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', (line) => {
  const w = line.trim().split(/\s+/)
  if (w[0] === 'announce') {
    dht.announce(w[1], Number(w[2]), (err) => say('announced ' + w[1] + (err ? ' error ' + err.message : ' ok')))
  } else if (w[0] === 'lookup') {
    const found = new Set()
    const onPeer = (peer, infoHash) => {
      if (infoHash.toString('hex') === w[1]) found.add(peer.host + ':' + peer.port)
    }
    dht.on('peer', onPeer)
    dht.lookup(w[1], () => {
      dht.removeListener('peer', onPeer)
      say('found ' + w[1] + (found.size ? ' ' + [...found].join(' ') : ''))
    })
  } else if (w[0] === 'nodes') {
    say('nodes ' + dht.toJSON().nodes.map((n) => n.host + ':' + n.port).join(' '))
  }
})
rl.on('close', () => dht.destroy(() => process.exit(0)))
