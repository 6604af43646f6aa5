"""A publish flow driven through a client generated from rat-api's OpenAPI
document by openapi-python-client (the package `rat_client` on PYTHONPATH).

Usage: python publish_flow.py BASE_URL API_KEY

Creates a namespace and a pipeline, writes the pipeline's SQL, publishes it,
reads the version history and the published version back, and checks that
an error answer parses as the document's error envelope. Every call goes
through the generated functions and models; nothing is hand-written HTTP.
Exits non-zero (an AssertionError with the answer) on any surprise.
"""

import sys

from rat_client import AuthenticatedClient
from rat_client.api.files import files_read, files_write
from rat_client.api.namespaces import namespaces_create, namespaces_list
from rat_client.api.pipelines import pipelines_create, pipelines_get
from rat_client.api.versions import versions_get, versions_list, versions_publish
from rat_client.models import (
    CreatedNamespace,
    CreatedPipeline,
    CreateNamespace,
    CreatePipeline,
    ErrorEnvelope,
    FileContent,
    NamespaceList,
    PipelineDto,
    PublishBody,
    PublishedDto,
    VersionDto,
    VersionList,
    WriteFile,
    WrittenFile,
)


def main(base_url: str, api_key: str) -> None:
    client = AuthenticatedClient(base_url=base_url, token=api_key, raise_on_unexpected_status=True)
    with client as client:
        created = namespaces_create.sync(client=client, body=CreateNamespace(name="sales", description="sales data"))
        assert isinstance(created, CreatedNamespace), created
        assert created.name == "sales", created

        listed = namespaces_list.sync(client=client)
        assert isinstance(listed, NamespaceList), listed
        assert "sales" in [n.name for n in listed.namespaces], listed

        pipeline = pipelines_create.sync(
            client=client,
            body=CreatePipeline(namespace="sales", layer="silver", name="orders", description="orders, cleaned"),
        )
        assert isinstance(pipeline, CreatedPipeline), pipeline
        assert pipeline.s3_path == "sales/pipelines/silver/orders/", pipeline

        sql = "SELECT id, amount FROM {{ ref('bronze.orders') }} WHERE amount > 0\n"
        key = pipeline.s3_path + "pipeline.sql"
        written = files_write.sync(path=key, client=client, body=WriteFile(content=sql))
        assert isinstance(written, WrittenFile), written
        assert written.path == key and written.version_id, written

        read = files_read.sync(path=key, client=client)
        assert isinstance(read, FileContent), read
        assert read.content == sql, read

        published = versions_publish.sync(
            namespace="sales", layer="silver", name="orders", client=client, body=PublishBody(message="first")
        )
        assert isinstance(published, PublishedDto), published
        assert published.version == 1 and published.message == "first", published
        pins = published.versions.additional_properties
        assert pins.get(key) == written.version_id, pins

        history = versions_list.sync(namespace="sales", layer="silver", name="orders", client=client)
        assert isinstance(history, VersionList), history
        assert history.total == 1 and history.versions[0].version_number == 1, history

        version = versions_get.sync(namespace="sales", layer="silver", name="orders", number=1, client=client)
        assert isinstance(version, VersionDto), version
        assert version.published_versions.additional_properties.get(key) == written.version_id, version

        got = pipelines_get.sync(namespace="sales", layer="silver", name="orders", client=client)
        assert isinstance(got, PipelineDto), got
        assert got.published_at is not None and got.draft_dirty is False, got

        # An error answer parses as the envelope the document declares.
        again = namespaces_create.sync_detailed(client=client, body=CreateNamespace(name="sales"))
        assert again.status_code == 409, again
        assert isinstance(again.parsed, ErrorEnvelope), again
        assert again.parsed.error.code == "ALREADY_EXISTS", again.parsed

    print("publish flow through the generated client: OK")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
