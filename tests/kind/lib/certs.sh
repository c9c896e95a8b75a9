# Certificates for the local cluster: one CA, the API server's serving cert,
# one client cert per component (so RBAC sees system:kube-controller-manager,
# system:node:<name>, ... and not one shared admin), and the service-account
# signing key. Sourced by tests/kind/cluster.

# issue_client_cert NAME CN [O]
_issue_cert() {
  local dir="$1" name="$2" subj="$3" ext="${4:-}"
  [ -s "$dir/$name.crt" ] && return 0
  openssl genrsa -out "$dir/$name.key" 2048 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr" 2>/dev/null
  if [ -n "$ext" ]; then
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 3650 -sha256 -extfile "$ext" -extensions v3 -out "$dir/$name.crt" 2>/dev/null
  else
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 3650 -sha256 -out "$dir/$name.crt" 2>/dev/null
  fi
  rm -f "$dir/$name.csr"
  [ -s "$dir/$name.crt" ] || die "openssl failed to issue the $name certificate"
}

make_certs() {
  local dir="$1" ip="$2" node="$3"
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [ ! -s "$dir/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.crt" \
      -days 3650 -subj "/CN=fleetstack-local-ca" 2>/dev/null || die "openssl could not create the cluster CA"
  fi
  cat > "$dir/apiserver.ext" <<EXT
[v3]
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$node,IP:10.96.0.1,IP:127.0.0.1,IP:$ip
EXT
  cat > "$dir/client.ext" <<EXT
[v3]
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EXT
  cat > "$dir/kubelet-serving.ext" <<EXT
[v3]
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:$node,IP:$ip,IP:127.0.0.1
EXT
  _issue_cert "$dir" apiserver "/CN=kube-apiserver" "$dir/apiserver.ext"
  _issue_cert "$dir" admin "/CN=fleetstack-admin/O=system:masters" "$dir/client.ext"
  _issue_cert "$dir" apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters" "$dir/client.ext"
  _issue_cert "$dir" controller-manager "/CN=system:kube-controller-manager" "$dir/client.ext"
  _issue_cert "$dir" scheduler "/CN=system:kube-scheduler" "$dir/client.ext"
  _issue_cert "$dir" kubelet "/CN=system:node:$node/O=system:nodes" "$dir/client.ext"
  _issue_cert "$dir" kubelet-serving "/CN=$node" "$dir/kubelet-serving.ext"
  _issue_cert "$dir" kube-proxy "/CN=system:kube-proxy" "$dir/client.ext"
  if [ ! -s "$dir/sa.key" ]; then
    openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
    openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null || die "openssl could not create the service-account key"
  fi
}

# write_kubeconfig FILE SERVER CERTNAME
write_kubeconfig() {
  local file="$1" server="$2" name="$3" dir="$4"
  cat > "$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: fleetstack-local
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$dir/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 < "$dir/$name.crt")
    client-key-data: $(base64 -w0 < "$dir/$name.key")
contexts:
- name: fleetstack-local
  context: {cluster: fleetstack-local, user: $name}
current-context: fleetstack-local
KC
  chmod 600 "$file"
}
