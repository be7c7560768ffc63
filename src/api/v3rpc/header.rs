//! ResponseHeader fill (etcd: v3rpc/header.go): ids and term always, the current revision
//! when the layer below left it zero.

use crate::proto::etcdserverpb::ResponseHeader;
use crate::server::Member;

pub fn fill(member: &Member, header: &mut Option<ResponseHeader>) {
    let rev = header
        .as_ref()
        .map(|h| h.revision)
        .filter(|r| *r != 0)
        .unwrap_or_else(|| member.current_revision());
    *header = Some(member.header(rev));
}
