"""A seed started on its state file: which of the peers it loaded it lists again.

The file says who was listed when the seed stopped, not who is alive now: a
peer may have died, or restarted with a new key, while the seed was down.  So
the seed hands out a loaded peer only once that peer answers the seed's own
liveness request, as at a dead-node check (§6.1), and, when a key is bound to
it, signs its reply with that key, as at registration (§3.1).  A peer that
fails is dropped (its keys stay, as after any removal); a dropped peer that
is alive lists itself again by registering.

Plain code: the seed (gossipnet.node.seed) sends the request and hands the
reply, if any, to :func:`verdict`.
"""

from __future__ import annotations

from gossipnet.protocol import auth
from gossipnet.protocol.wire import Address, Error, LivenessReply, LivenessRequest, Message

# Why a restored peer is dropped: logged as RESTORE_DROPPED's reason.
NO_ANSWER = "no answer to the seed's liveness request"
NOT_PROVED = "answered without proving the key bound to it (restarted with a new key?)"


def verdict(peer: Address, request: LivenessRequest, reply: Message | None, key: str | None) -> str | None:
    """Why ``peer``, loaded from the state file, is dropped; None if it is listed again.

    ``reply`` is its answer to ``request`` (None if none came); ``key`` the key bound to it, if any.
    """
    if isinstance(reply, Error):
        return None  # busy: something answers there, which the seed's own check counts as alive (§6.1)
    if not (isinstance(reply, LivenessReply) and reply.replier == peer and reply.timestamp == request.timestamp):
        return NO_ANSWER
    if key is not None and not auth.verify(key, reply.body(), reply.signature):
        return NOT_PROVED
    return None
