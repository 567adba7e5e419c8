"""Bucket changes made at the same moment, from separate clients (so separate connections,
spread over the server's shards): every change stays, and one name makes one bucket.

Tools apply a bucket's settings in parallel (Terraform puts CORS, tags, lifecycle and ACL
of one bucket at once); sync tools create the bucket from several workers."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from helpers import MiB, error_code_of


ROUNDS = 8
CREATORS = 8


def together(calls):
    """Runs each call on its own thread, released at the same moment; returns results or
    exceptions, in order."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        try:
            return call()
        except ClientError as e:
            return e

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def get(call, bucket, field):
    """A bucket setting's field, or None when the bucket has no such setting."""
    try:
        return call(Bucket=bucket)[field]
    except ClientError:
        return None


def public(s3, bucket):
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    return any(g["Grantee"].get("URI", "").endswith("/global/AllUsers") for g in grants)


CORS = {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://a.example"]}]}
TAGS = {"TagSet": [{"Key": "team", "Value": "storage"}]}
LIFECYCLE = {"Rules": [{"ID": "old", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                        "Expiration": {"Days": 7}}]}
WEBSITE = {"IndexDocument": {"Suffix": "index.html"}}


def test_bucket_settings_put_together_all_stay(server, bucket):
    clients = [server.client() for _ in range(5)]
    for round_ in range(ROUNDS):
        c = clients
        results = together([
            lambda: c[0].put_bucket_cors(Bucket=bucket, CORSConfiguration=CORS),
            lambda: c[1].put_bucket_tagging(Bucket=bucket, Tagging=TAGS),
            lambda: c[2].put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration=LIFECYCLE),
            lambda: c[3].put_bucket_acl(Bucket=bucket, ACL="public-read"),
            lambda: c[4].put_bucket_website(Bucket=bucket, WebsiteConfiguration=WEBSITE),
        ])
        failed = [r for r in results if isinstance(r, Exception)]
        assert not failed, f"round {round_}: {failed}"
        s3 = clients[0]
        kept = {
            "cors": get(s3.get_bucket_cors, bucket, "CORSRules") == CORS["CORSRules"],
            "tags": get(s3.get_bucket_tagging, bucket, "TagSet") == TAGS["TagSet"],
            "lifecycle": get(s3.get_bucket_lifecycle_configuration, bucket, "Rules")
            == LIFECYCLE["Rules"],
            "acl": public(s3, bucket),
            "website": get(s3.get_bucket_website, bucket, "IndexDocument")
            == WEBSITE["IndexDocument"],
        }
        lost = [k for k, v in kept.items() if not v]
        assert not lost, f"round {round_}: changes lost: {lost}"
        # Take everything off again, also all at once.
        results = together([
            lambda: c[0].delete_bucket_cors(Bucket=bucket),
            lambda: c[1].delete_bucket_tagging(Bucket=bucket),
            lambda: c[2].delete_bucket_lifecycle(Bucket=bucket),
            lambda: c[3].put_bucket_acl(Bucket=bucket, ACL="private"),
            lambda: c[4].delete_bucket_website(Bucket=bucket),
        ])
        failed = [r for r in results if isinstance(r, Exception)]
        assert not failed, f"round {round_}: {failed}"
        left = [name for name, call, field in [
            ("cors", s3.get_bucket_cors, "CORSRules"),
            ("tags", s3.get_bucket_tagging, "TagSet"),
            ("lifecycle", s3.get_bucket_lifecycle_configuration, "Rules"),
            ("website", s3.get_bucket_website, "IndexDocument"),
        ] if get(call, bucket, field) is not None]
        if public(s3, bucket):
            left.append("acl")
        assert not left, f"round {round_}: removals lost: {left}"


def test_one_name_makes_one_bucket(server, request):
    clients = [server.client() for _ in range(CREATORS)]
    for round_ in range(ROUNDS // 2):
        name = f"race-{round_}-{request.node.nodeid.__hash__() & 0xffffff:06x}"
        results = together([lambda c=c: c.create_bucket(Bucket=name) for c in clients])
        created = [r for r in results if not isinstance(r, Exception)]
        refused = [error_code_of(r) for r in results if isinstance(r, Exception)]
        assert len(created) == 1, f"round {round_}: {len(created)} creations succeeded"
        assert set(refused) == {"BucketAlreadyOwnedByYou"}, refused
        # Whoever's creation 'won', the bucket every client now writes into is one bucket.
        for i, c in enumerate(clients):
            c.put_object(Bucket=name, Key=f"from-{i}", Body=b"x")
        keys = [o["Key"] for o in clients[0].list_objects_v2(Bucket=name)["Contents"]]
        assert sorted(keys) == sorted(f"from-{i}" for i in range(CREATORS))
        for i in range(CREATORS):
            clients[0].delete_object(Bucket=name, Key=f"from-{i}")
        clients[0].delete_bucket(Bucket=name)


def test_delete_bucket_and_puts_at_once_never_both_succeed(server):
    """DeleteBucket answers 204 only for an empty bucket. A PUT that started before the
    delete and commits after it must not succeed beside it: its object would stay in a
    deleted bucket, acknowledged and unreachable."""
    clients = [server.client() for _ in range(6)]
    body = os.urandom(2 * MiB)
    both = []
    for round_ in range(ROUNDS):
        name = f"del-race-{round_}-{os.urandom(3).hex()}"
        clients[0].create_bucket(Bucket=name)
        clients[0].put_bucket_tagging(Bucket=name, Tagging=TAGS)
        puts = [lambda c=c, i=i: c.put_object(Bucket=name, Key=f"k{i}", Body=body)
                for i, c in enumerate(clients[1:])]

        def delete():
            time.sleep(0.002 * (round_ % 4))
            return clients[0].delete_bucket(Bucket=name)

        results = together(puts + [delete])
        acked = [i for i, r in enumerate(results[:-1]) if not isinstance(r, Exception)]
        deleted = not isinstance(results[-1], Exception)
        print(f"round {round_}: deleted={deleted} puts acknowledged={len(acked)}"
              + ("" if deleted else f" ({error_code_of(results[-1])})"))
        if deleted and acked:
            both.append((round_, acked))
        if not deleted:
            keys = {o["Key"] for o in clients[0].list_objects_v2(Bucket=name).get("Contents", [])}
            assert keys == {f"k{i}" for i in acked}, f"round {round_}: {keys} vs {acked}"
            # A bucket put back after a late write keeps its settings.
            assert get(clients[0].get_bucket_tagging, name, "TagSet") == TAGS["TagSet"]
            for k in keys:
                clients[0].delete_object(Bucket=name, Key=k)
            clients[0].delete_bucket(Bucket=name)
        else:
            refused = {error_code_of(r) for r in results[:-1] if isinstance(r, Exception)}
            assert refused <= {"NoSuchBucket"}, refused
    assert not both, f"DeleteBucket and PUTs both acknowledged: {both}"


def test_a_name_retaken_as_its_bucket_is_deleted_loses_no_acknowledged_object(server):
    """A DeleteBucket that meets a late PUT puts the bucket back. Another client creating
    the same name in that moment must not take it first: the late object would stay in a
    bucket nobody can reach. While DeleteBucket has not decided, CreateBucket of the name
    answers OperationAborted (409), as in AWS, and the client tries again."""
    clients = [server.client() for _ in range(7)]
    body = os.urandom(2 * MiB)
    aborted_rounds = 0
    for round_ in range(3 * ROUNDS):
        name = f"retake-{round_}-{os.urandom(3).hex()}"
        clients[0].create_bucket(Bucket=name)
        puts = [lambda c=c, i=i: c.put_object(Bucket=name, Key=f"k{i}", Body=body)
                for i, c in enumerate(clients[1:4])]
        creates = []

        def delete():
            time.sleep(0.002 * (round_ % 4))
            return clients[0].delete_bucket(Bucket=name)

        def create_again(c):
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                try:
                    c.create_bucket(Bucket=name)
                    creates.append("created")
                except ClientError as e:
                    creates.append(error_code_of(e))

        results = together(puts + [delete] + [lambda c=c: create_again(c) for c in clients[4:]])
        acked = {f"k{i}" for i, r in enumerate(results[:3]) if not isinstance(r, Exception)}
        deleted = not isinstance(results[3], Exception)
        codes = set(creates)
        print(f"round {round_}: deleted={deleted} acknowledged={sorted(acked)} creates={codes}")
        assert codes <= {"created", "BucketAlreadyOwnedByYou", "BucketAlreadyExists",
                         "OperationAborted"}, codes
        aborted_rounds += "OperationAborted" in codes
        try:
            listed = clients[0].list_objects_v2(Bucket=name).get("Contents", [])
        except ClientError as e:
            # Deleted, and not made again before the creators stopped: then no PUT may
            # have been acknowledged (an object acknowledged before the delete would have
            # kept the bucket).
            assert error_code_of(e) == "NoSuchBucket" and deleted, (round_, e)
            assert not acked, f"round {round_}: acknowledged {acked}, and the bucket is gone"
            continue
        keys = {o["Key"] for o in listed}
        assert acked <= keys, f"round {round_}: acknowledged {acked}, listed {keys}"
        for k in keys:
            clients[0].delete_object(Bucket=name, Key=k)
        clients[0].delete_bucket(Bucket=name)
    # The creators did meet deletes in progress (in nearly every round where the delete won).
    assert aborted_rounds > 0
