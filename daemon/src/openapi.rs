//! The REST API's description (docs/openapi.yaml), generated: one table of
//! the routes the daemon serves, made into an OpenAPI document whose
//! schemas are wrun-api's own types, so the description cannot drift.
//!
//! Regenerate the file with `WRUN_WRITE_OPENAPI=1 cargo test -p wrun-daemon
//! openapi`; the tests below fail while it differs, while a route of the
//! table is not routed or a routed one is missing, and while a query key a
//! handler reads is documented for no route.

use std::borrow::Cow;

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, ParameterStyle,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, Schema as SchemaObject, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, RefOr,
    Required, ResponseBuilder, ResponsesBuilder, ServerBuilder, Tag,
};
use utoipa::{PartialSchema, ToSchema};

use wrun_api::ErrorResponse;
use wrun_api::archive::{ContainerChange, PATH_STAT_HEADER};
use wrun_api::containers::{
    ContainerConfig, ContainerCreateRequest, ContainerCreateResponse, ContainerInspect,
    ContainerPruneResponse, ContainerStats, ContainerSummary, TopResponse, WaitResponse,
};
use wrun_api::exec::{ExecCreateRequest, ExecCreateResponse, ExecInspect, ExecStartRequest};
use wrun_api::images::{
    CommitResponse, HistoryItem, ImageDeleteItem, ImageInspect, ImagePruneResponse,
    ImageSearchResult, ImageSummary, LoadMessage,
};
use wrun_api::network::{
    Network, NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse,
    NetworkDisconnectRequest,
};
use wrun_api::registry::{AuthConfig, AuthResponse, ProgressMessage};
use wrun_api::system::{
    BuildCachePruneResponse, EventMessage, NetworkPruneResponse, SystemInfo, SystemVersion,
};
use wrun_api::time::UNIX_TIME_PATTERN;
use wrun_api::volumes::{
    DiskUsage, Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse,
};

/// The media type of Docker's multiplexed stdout/stderr frames.
pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

/// An HTTP method the daemon serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Head,
    Post,
    Put,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Head => "HEAD",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }

    fn http(self) -> HttpMethod {
        match self {
            Verb::Get => HttpMethod::Get,
            Verb::Head => HttpMethod::Head,
            Verb::Post => HttpMethod::Post,
            Verb::Put => HttpMethod::Put,
            Verb::Delete => HttpMethod::Delete,
        }
    }
}

/// One route: what it is called, what it takes and what it answers.
pub struct Route {
    pub verb: Verb,
    /// The path template, `{id}` and `{name}` for path parameters.
    pub path: &'static str,
    /// Docker's operation ID where Docker has the route.
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    pub body: Body,
    pub replies: &'static [Reply],
}

/// A path or query parameter.
pub struct Param {
    pub name: &'static str,
    pub place: Place,
    pub value: Value,
    pub about: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Path,
    Query,
    RequiredQuery,
    /// A request header (optional).
    Header,
}

/// What a parameter's value may be.
pub enum Value {
    /// Any text.
    Text,
    /// Text matching a regular expression.
    Pattern(&'static str),
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Docker's boolean (`httputils.BoolValue`): empty, `0`, `no`, `false`
    /// and `none` (any case) are false, any other text true.
    Flag,
    /// Docker's `filters`: a JSON object of the given keys, each with a
    /// list of values (`{"key":["v"]}`) or a set (`{"key":{"v":true}}`).
    Filters(&'static [Filter]),
    /// A parameter given once per value (`names=a&names=b`).
    Repeated,
}

/// A key of a `filters` parameter.
pub struct Filter {
    pub key: &'static str,
    /// The regular expression of one value.
    pub value: &'static str,
    /// Whether the key takes several values or exactly one.
    pub many: bool,
}

const fn many(key: &'static str, value: &'static str) -> Filter {
    Filter {
        key,
        value,
        many: true,
    }
}

const fn one(key: &'static str, value: &'static str) -> Filter {
    Filter {
        key,
        value,
        many: false,
    }
}

/// A request body.
pub enum Body {
    None,
    /// A JSON document of this type.
    Json(Schema),
    /// An image tar (plain or gzip), streamed.
    Tar,
    /// A tar of files to extract into an instance (`cp`), streamed.
    Archive,
    /// A rootfs tar (plain or gzip) to import, streamed.
    Rootfs,
    /// A JSON document of this type that must be there (dockerd answers
    /// no body with 400 `got EOF while reading request body`).
    RequiredJson(Schema),
}

/// One answer of a route.
pub struct Reply {
    pub status: u16,
    pub about: &'static str,
    pub content: Content,
}

/// What an answer carries.
pub enum Content {
    Empty,
    /// `text/plain`.
    Text,
    /// One JSON document of this type.
    Json(Schema),
    /// A JSON array of this type.
    JsonList(Schema),
    /// JSON documents of this type, one per line, streamed.
    JsonLines(Schema),
    /// Docker's multiplexed stdout/stderr frames, streamed.
    Multiplexed,
    /// The same frames as dockerd's exec sends them, labelled
    /// `application/vnd.docker.raw-stream`.
    RawStream,
    /// An image tar, streamed.
    Tar,
    /// A JSON array of this type, or `null` for none (as dockerd's
    /// `/changes`).
    JsonListOrNull(Schema),
    /// A tar of an instance's files (`application/x-tar`), streamed, with
    /// the path's stat in the `X-Docker-Container-Path-Stat` header.
    PathTar,
    /// No body: the path's stat in the `X-Docker-Container-Path-Stat` header.
    PathStat,
    /// A rootfs tar as `application/octet-stream` (dockerd's `export`).
    Octets,
    /// Docker's error body, `{"message": "…"}`.
    Error,
}

/// A wrun-api type's schema, as the table names it.
#[derive(Clone, Copy)]
pub struct Schema {
    name: fn() -> Cow<'static, str>,
    own: fn() -> RefOr<SchemaObject>,
    nested: fn(&mut Vec<(String, RefOr<SchemaObject>)>),
}

/// The schema of `T`, for the table.
pub const fn schema<T: ToSchema>() -> Schema {
    Schema {
        name: <T as ToSchema>::name,
        own: <T as PartialSchema>::schema,
        nested: <T as ToSchema>::schemas,
    }
}

impl Schema {
    fn reference(&self) -> RefOr<SchemaObject> {
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name((self.name)()))
    }
}

const fn reply(status: u16, about: &'static str, content: Content) -> Reply {
    Reply {
        status,
        about,
        content,
    }
}

const fn error(status: u16, about: &'static str) -> Reply {
    reply(status, about, Content::Error)
}

const fn query(name: &'static str, value: Value, about: &'static str) -> Param {
    Param {
        name,
        place: Place::Query,
        value,
        about,
    }
}

const fn required_query(name: &'static str, value: Value, about: &'static str) -> Param {
    Param {
        name,
        place: Place::RequiredQuery,
        value,
        about,
    }
}

const ID: Param = Param {
    name: "id",
    place: Place::Path,
    value: Value::Text,
    about: "The instance's ID, a unique prefix of it, or its name.",
};

const IMAGE_NAME: Param = Param {
    name: "name",
    place: Place::Path,
    value: Value::Text,
    about: "The image's name (`repo[:tag]`, slashes allowed) or ID.",
};

const VOLUME_NAME: Param = Param {
    name: "name",
    place: Place::Path,
    value: Value::Text,
    about: "The volume's name.",
};

/// The credentials of a pull or push (docs/registry.md).
const REGISTRY_AUTH: Param = Param {
    name: "X-Registry-Auth",
    place: Place::Header,
    value: Value::Text,
    about: "Base64url of the JSON `{\"username\",\"password\",\"serveraddress\"}` (or `auth`: base64 of `user:password`): the credentials for the image's registry, sent to it alone; credentials naming another registry, or a token alone, are refused (400).",
};

const NO_SUCH_CONTAINER: Reply = error(404, "No such container.");
const NO_SUCH_EXEC: Reply = error(404, "No such exec instance (or its instance was removed).");
const NETWORK_ID: Param = Param {
    name: "id",
    place: Place::Path,
    value: Value::Text,
    about: "The network's ID, its name, or a unique prefix of its ID.",
};

/// An exec's ID.
const EXEC_ID: Param = Param {
    name: "id",
    place: Place::Path,
    value: Value::Text,
    about: "The exec's ID, as its create answered it.",
};
/// A number as Go's `strconv.Atoi` reads it (within 32 bits).
const ATOI: &str = r"^[+-]?[0-9]{1,9}$";
const NO_SUCH_IMAGE: Reply = error(404, "No such image.");
/// The `path` of the archive routes.
const ARCHIVE_PATH: Param = required_query(
    "path",
    Value::Text,
    "A path in the instance (relative ones start at `/`): in its rootfs, or in the volume or bind it is at or below, as dockerd resolves it in the container's mounts; a trailing `/` or `/.` as `docker cp` reads them.",
);
const ARCHIVE_LOOKUP_ERROR: Reply = error(
    500,
    "As dockerd: a file used as a directory on the way (`lstat …: not a directory`), a symlink loop (`evalSymlinksInScope: too many links in …`); or the daemon failed.",
);
const SERVER_ERROR: Reply = error(500, "The daemon failed (disk, I/O).");

/// A repository name as Docker's reference grammar has it (an optional
/// registry host with a port, then lowercase path components), kept short
/// of Docker's 255 characters.
const REPOSITORY: &str = r"^([a-z0-9]{1,16}(\.[a-z0-9]{1,16}){0,2}(:[0-9]{1,5})?/)?[a-z0-9]{1,16}([._-][a-z0-9]{1,16})?(/[a-z0-9]{1,16}([._-][a-z0-9]{1,16})?){0,2}$";

/// A value in a filter: no quote, backslash or control character.
const FILTER_VALUE: &str = r#"[^"\\\x00-\x1f]*"#;

/// `until`, `label` and `label!` of the prune routes.
const PRUNE_FILTERS: Param = query(
    "filters",
    Value::Filters(&[
        one(
            "until",
            r"[0-9]{1,10}(\.[0-9]{1,9})?|[1-9][0-9]{0,3}(s|m|h)|20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z",
        ),
        many("label", FILTER_VALUE),
        many("label!", FILTER_VALUE),
    ]),
    "`until` (Unix seconds, an RFC 3339 time or a duration before now: `24h`), `label` and `label!` (`key` or `key=value`; all must hold).",
);

const STDOUT: Param = query("stdout", Value::Flag, "Include the guest's stdout.");
const STDERR: Param = query("stderr", Value::Flag, "Include the guest's stderr.");

/// Every route the daemon serves.
pub const ROUTES: &[Route] = &[
    Route {
        verb: Verb::Get,
        path: "/_ping",
        operation_id: "SystemPing",
        tag: "System",
        summary: "Ping the daemon",
        params: &[],
        body: Body::None,
        replies: &[reply(200, "`OK`", Content::Text)],
    },
    Route {
        verb: Verb::Head,
        path: "/_ping",
        operation_id: "SystemPingHead",
        tag: "System",
        summary: "Ping the daemon (headers only)",
        params: &[],
        body: Body::None,
        replies: &[reply(
            200,
            "The API version in the headers.",
            Content::Empty,
        )],
    },
    Route {
        verb: Verb::Get,
        path: "/version",
        operation_id: "SystemVersion",
        tag: "System",
        summary: "Version of the daemon and its API",
        params: &[],
        body: Body::None,
        replies: &[reply(
            200,
            "The versions.",
            Content::Json(schema::<SystemVersion>()),
        )],
    },
    Route {
        verb: Verb::Get,
        path: "/info",
        operation_id: "SystemInfo",
        tag: "System",
        summary: "System-wide information",
        params: &[],
        body: Body::None,
        replies: &[reply(
            200,
            "Counts of instances and images, the host's resources.",
            Content::Json(schema::<SystemInfo>()),
        )],
    },
    Route {
        verb: Verb::Get,
        path: "/events",
        operation_id: "SystemEvents",
        tag: "System",
        summary: "Stream events: the kept ones from `since`, then live ones until `until` or until the client goes away",
        params: &[
            query(
                "since",
                Value::Pattern(UNIX_TIME_PATTERN),
                "Unix seconds (optional fraction; empty: no bound): send the kept events from then.",
            ),
            query(
                "until",
                Value::Pattern(UNIX_TIME_PATTERN),
                "Unix seconds (optional fraction; empty: no bound): end the stream then.",
            ),
            query(
                "filters",
                Value::Filters(&[
                    many("type", "container|image"),
                    many("event", FILTER_VALUE),
                    many("container", FILTER_VALUE),
                    many("image", FILTER_VALUE),
                    many("label", FILTER_VALUE),
                ]),
                "Events to send: by `type`, `event` (action), `container` (ID prefix or name), `image`, `label` (`key` or `key=value`).",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(
                200,
                "One event per line.",
                Content::JsonLines(schema::<EventMessage>()),
            ),
            error(400, "A bad filter or time."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/wrun/shutdown",
        operation_id: "WrunShutdown",
        tag: "System",
        summary: "wrun's own: stop the daemon (running instances are ended and recorded as exited)",
        params: &[],
        body: Body::None,
        replies: &[reply(204, "Shutting down.", Content::Empty)],
    },
    Route {
        verb: Verb::Post,
        path: "/auth",
        operation_id: "SystemAuth",
        tag: "System",
        summary: "Check credentials against a registry (`docker login`); the daemon keeps nothing",
        params: &[],
        body: Body::RequiredJson(schema::<AuthConfig>()),
        replies: &[
            reply(
                200,
                "The registry took them (or needs none): `Login Succeeded`, no identity token.",
                Content::Json(schema::<AuthResponse>()),
            ),
            error(
                400,
                "Not JSON; no `serveraddress` (wrun has no default registry) or one that is no `HOST[:PORT]`; no user name or password.",
            ),
            error(
                500,
                "The registry refused them (`login attempt to http://HOST/v2/ failed with status: 401 Unauthorized`) or could not be reached.",
            ),
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/images/json",
        operation_id: "ImageList",
        tag: "Image",
        summary: "List images",
        params: &[
            query(
                "shared-size",
                Value::Flag,
                "Fill `SharedSize`: the bytes of layers another image shares (-1 otherwise).",
            ),
            query(
                "filters",
                Value::Filters(&[
                    one("dangling", "true|false|1|0"),
                    many("label", FILTER_VALUE),
                    many("reference", "[a-z0-9*?./:_-]{1,40}"),
                    many(
                        "until",
                        r"[0-9]{1,10}(\.[0-9]{1,9})?|[1-9][0-9]{0,3}(s|m|h)|20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z",
                    ),
                ]),
                "`dangling` (`true`: the images without a name), `label` (`key` or `key=value`, all must hold), `reference` (a glob on `repo[:tag]`), `until` (Unix seconds, an RFC 3339 time or a duration before now); `before` and `since` name an image, 404 when none is.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(
                200,
                "The images, newest first.",
                Content::JsonList(schema::<ImageSummary>()),
            ),
            error(400, "A bad filter."),
            error(404, "A `before` or `since` image that does not exist."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/images/{name}/json",
        operation_id: "ImageInspect",
        tag: "Image",
        summary: "Inspect an image",
        params: &[IMAGE_NAME],
        body: Body::None,
        replies: &[
            reply(200, "The image.", Content::Json(schema::<ImageInspect>())),
            error(
                400,
                "A name that is no image reference: dockerd's `invalid reference format`.",
            ),
            NO_SUCH_IMAGE,
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/images/{name}/history",
        operation_id: "ImageHistory",
        tag: "Image",
        summary: "History of an image, newest layer first",
        params: &[IMAGE_NAME],
        body: Body::None,
        replies: &[
            reply(
                200,
                "The layers.",
                Content::JsonList(schema::<HistoryItem>()),
            ),
            error(
                400,
                "A name that is no image reference: dockerd's `invalid reference format`.",
            ),
            NO_SUCH_IMAGE,
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/images/{name}/push",
        operation_id: "ImagePush",
        tag: "Image",
        summary: "Push a stored image to its registry (`docker push`): only the blobs it lacks, then the manifest as stored",
        params: &[
            Param {
                about: "The repository, `HOST[:PORT]/PATH` (slashes allowed), or with its tag.",
                ..IMAGE_NAME
            },
            query(
                "tag",
                Value::Pattern(r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"),
                "The tag to push; none: the tag in the name, else every stored tag of the repository.",
            ),
            REGISTRY_AUTH,
        ],
        body: Body::Json(schema::<AuthConfig>()),
        replies: &[
            reply(
                200,
                "dockerd's progress lines: `The push refers to repository [NAME]`, each layer's `Preparing` and `Pushed` or `Layer already exists`, `TAG: digest: D size: N`, then a line whose `aux` holds the tag, digest and size; a failure (a name not stored: `An image does not exist locally with the tag: NAME`; the registry's refusal) is the last line's `error`.",
                Content::JsonLines(schema::<ProgressMessage>()),
            ),
            error(
                400,
                "Neither `X-Registry-Auth` nor a JSON body of credentials (`Bad parameters and missing X-Registry-Auth: EOF`); a malformed one; a name that is no reference or names no registry.",
            ),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/images/search",
        operation_id: "ImageSearch",
        tag: "Image",
        summary: "Search a registry's repositories (`docker search`): its catalog (`GET /v2/_catalog`) filtered by the term, each repository's tags as its description",
        params: &[
            query(
                "term",
                Value::Text,
                "`HOST[:PORT]/TERM`, or TERM alone to search the daemon's default-registry; the repositories whose path holds TERM (any case).",
            ),
            query(
                "limit",
                Value::Pattern(r"^-?[0-9]{1,9}$"),
                "At most this many results, 1 to 100 (default 25).",
            ),
            query(
                "filters",
                Value::Filters(&[
                    many("stars", r"^[0-9]{1,9}$"),
                    one("is-official", "^(true|false|1|0)$"),
                    one("is-automated", "^(true|false|1|0)$"),
                ]),
                "dockerd's search filters; a registry's repositories have no stars and are neither official nor automated.",
            ),
            REGISTRY_AUTH,
        ],
        body: Body::None,
        replies: &[
            reply(
                200,
                "The repositories found, in catalog order.",
                Content::JsonList(schema::<ImageSearchResult>()),
            ),
            error(
                400,
                "A limit outside 1-100 (`Limit 0 is outside the range of [1, 100]`), a bad filter (`Invalid filter 'foo'`), a term that names no registry while none is configured, a malformed `X-Registry-Auth` or one for another registry.",
            ),
            error(
                500,
                "The registry refused or lacks its catalog (a login needed: 401), could not be reached, or its TLS certificate is not trusted.",
            ),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/images/{name}/tag",
        operation_id: "ImageTag",
        tag: "Image",
        summary: "Give an image another name",
        params: &[
            IMAGE_NAME,
            required_query(
                "repo",
                Value::Pattern(REPOSITORY),
                "The repository of the new name (`docker.io/library/` is dropped).",
            ),
            query(
                "tag",
                Value::Pattern(r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"),
                "The tag of the new name; none: `latest`.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(201, "Tagged.", Content::Empty),
            error(400, "A bad or missing name."),
            NO_SUCH_IMAGE,
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Delete,
        path: "/images/{name}",
        operation_id: "ImageDelete",
        tag: "Image",
        summary: "Untag an image, and delete it when no name is left",
        params: &[
            IMAGE_NAME,
            query(
                "force",
                Value::Flag,
                "Remove even when an instance uses it or it has several names.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(
                200,
                "What was untagged and deleted.",
                Content::JsonList(schema::<ImageDeleteItem>()),
            ),
            error(
                400,
                "A name that is no image reference: dockerd's `invalid reference format`.",
            ),
            NO_SUCH_IMAGE,
            error(
                409,
                "In use by an instance, or referenced by several names.",
            ),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/images/get",
        operation_id: "ImageGetAll",
        tag: "Image",
        summary: "Export images as one image tar (OCI layout with Docker's manifest.json)",
        params: &[required_query(
            "names",
            Value::Repeated,
            "An image to export (name or ID), once per image.",
        )],
        body: Body::None,
        replies: &[
            reply(200, "The tar, streamed.", Content::Tar),
            error(400, "No image named."),
            NO_SUCH_IMAGE,
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/images/{name}/get",
        operation_id: "ImageGet",
        tag: "Image",
        summary: "Export one image as an image tar",
        params: &[IMAGE_NAME],
        body: Body::None,
        replies: &[
            reply(200, "The tar, streamed.", Content::Tar),
            NO_SUCH_IMAGE,
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/images/load",
        operation_id: "ImageLoad",
        tag: "Image",
        summary: "Load images from an image tar (OCI layout or `docker save`), read as it arrives",
        params: &[query(
            "quiet",
            Value::Flag,
            "Leave out the notes on what the load converted.",
        )],
        body: Body::Tar,
        replies: &[
            reply(
                200,
                "One progress line per loaded image name (and note).",
                Content::JsonLines(schema::<LoadMessage>()),
            ),
            error(400, "Not an image archive; nothing is stored."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/build",
        operation_id: "ImageBuild",
        tag: "Image",
        summary: "Build an image from a tar of the build context (`DOCKER_BUILDKIT=0 docker build`), read as it arrives; the progress streamed",
        params: &[
            query(
                "t",
                Value::Repeated,
                "A name for the image (`name[:tag]`, `latest` when no tag), once per name.",
            ),
            query(
                "dockerfile",
                Value::Text,
                "The build file's path inside the context; none: `wrun.toml`, then `Wasmfile`, then `Dockerfile`. A path out of the context is refused (500, as dockerd).",
            ),
            query(
                "buildargs",
                Value::Text,
                "A JSON object of build arguments (`{\"NAME\":\"value\"}`; a null value leaves the argument unset). `SOURCE_DATE_EPOCH` sets the time of every file and of the config.",
            ),
            query(
                "labels",
                Value::Text,
                "A JSON object of labels, put on the image by a `LABEL` line added to the end of the Dockerfile, as dockerd adds one.",
            ),
            query(
                "target",
                Value::Text,
                "The stage to build and store; none: the last.",
            ),
            query("q", Value::Flag, "Answer only the image ID, no progress."),
            query(
                "memory",
                Value::Pattern(r"^[0-9]*$"),
                "The memory limit of each `RUN` step, in bytes; 0 or none: the daemon's.",
            ),
            query(
                "networkmode",
                Value::OneOf(&["", "default", "none", "bridge", "host"]),
                "The network of each `RUN` step: `host` the host's; none otherwise (others 400).",
            ),
            query(
                "nocache",
                Value::Flag,
                "Run every step: take nothing from the build cache.",
            ),
            query(
                "pull",
                Value::Flag,
                "Pull a registry base image again (anonymously); a base named without a registry comes from the store.",
            ),
            query(
                "rm",
                Value::Flag,
                "Accepted: wrun's steps leave no intermediate containers to remove.",
            ),
            query(
                "forcerm",
                Value::Flag,
                "Accepted: wrun's steps leave no intermediate containers to remove.",
            ),
            query(
                "remote",
                Value::Pattern("^$"),
                "Refused when given: wrun builds only the context in the request body.",
            ),
            query(
                "version",
                Value::OneOf(&["", "1"]),
                "The builder: `1`, the classic one (BuildKit's `2` is refused).",
            ),
        ],
        body: Body::Tar,
        replies: &[
            reply(
                200,
                "Progress lines (`stream`), the image's ID (`aux`), then `Successfully built`/`Successfully tagged`; a failed step ends the stream with an `errorDetail` line.",
                Content::JsonLines(schema::<crate::build::BuildMessage>()),
            ),
            error(
                400,
                "A bad parameter, or a malformed build file (`dockerfile parse error line N: …`); nothing is stored.",
            ),
            error(
                500,
                "A bad context tar, no build file, or a build file path out of the context (dockerd's 500s); nothing is stored.",
            ),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/images/prune",
        operation_id: "ImagePrune",
        tag: "Image",
        summary: "Remove the dangling images, or with `dangling=false` every image no instance uses",
        params: &[query(
            "filters",
            Value::Filters(&[one("dangling", "true|false|1|0")]),
            "`dangling`: `true` (the default) or `false`.",
        )],
        body: Body::None,
        replies: &[
            reply(
                200,
                "What was removed.",
                Content::Json(schema::<ImagePruneResponse>()),
            ),
            error(400, "A bad filter."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/images/create",
        operation_id: "ImageCreate",
        tag: "Image",
        summary: "Pull an image from its registry (`docker pull`, `fromImage`), or import a rootfs tar as a one-layer image (`docker import`, `fromSrc=-`)",
        params: &[
            query(
                "fromImage",
                Value::Text,
                "The image to pull, `HOST[:PORT]/PATH[:TAG]` (wrun has no default registry); none or empty: an import of `fromSrc`.",
            ),
            query(
                "fromSrc",
                Value::OneOf(&["-"]),
                "`-`: import the request body (wrun imports no URL).",
            ),
            query(
                "repo",
                Value::Pattern(REPOSITORY),
                "The imported image's repository (`docker.io/library/` is dropped); none: no name.",
            ),
            query(
                "tag",
                Value::Pattern(r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[a-f0-9]{64})?$"),
                "The imported image's tag (none: `latest`); for a pull, the tag or digest (`sha256:…`, refused for an import) that replaces any in `fromImage` (a pull of no tag at all, every tag, is refused).",
            ),
            REGISTRY_AUTH,
            query(
                "message",
                Value::Text,
                "The history comment; none: `Imported from -`.",
            ),
            query(
                "changes",
                Value::Repeated,
                "A Dockerfile instruction applied to the config (`CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`, `USER`, `VOLUME`, `WORKDIR`), once per instruction.",
            ),
            query(
                "platform",
                Value::Pattern(r"^((wasip1|wasip2|wasi)/wasm)?$"),
                "The OS when the entrypoint names no module (`wasip1/wasm`, `wasip2/wasm`, `wasi/wasm`).",
            ),
        ],
        body: Body::Rootfs,
        replies: &[
            reply(
                200,
                "Imported: one line whose `status` is the new image's ID. Pulled: dockerd's progress lines (`Pulling from PATH`, each layer's, `Digest: …`, `Status: …`); a failure past the manifest is the last line's `error`.",
                Content::JsonLines(schema::<ProgressMessage>()),
            ),
            error(
                400,
                "Not a rootfs tar (empty, malformed, an unsafe entry), a bad name or change, a source other than `-`; nothing is stored.",
            ),
            error(
                404,
                "A pull: the registry has no such tag or digest (`manifest for NAME not found: manifest unknown: …`).",
            ),
            error(
                500,
                "A pull: the registry refused the credentials or could not be reached; or the daemon failed.",
            ),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/commit",
        operation_id: "ImageCommit",
        tag: "Image",
        summary: "Make an image of an instance's writable layer over its image (`docker commit`)",
        params: &[
            required_query(
                "container",
                Value::Text,
                "The instance's ID, a unique prefix of it, or its name.",
            ),
            query(
                "repo",
                Value::Pattern(REPOSITORY),
                "The new image's repository (`docker.io/library/` is dropped); none: no name.",
            ),
            query(
                "tag",
                Value::Pattern(r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"),
                "The new image's tag; none: `latest`.",
            ),
            query("comment", Value::Text, "The history entry's comment."),
            query(
                "author",
                Value::Text,
                "The image's and the history entry's author.",
            ),
            query(
                "pause",
                Value::Flag,
                "Pause a running instance while its layer is read (the default); `0`: read it while it runs.",
            ),
            query(
                "changes",
                Value::Repeated,
                "A Dockerfile instruction applied to the config (`CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`, `USER`, `VOLUME`, `WORKDIR`), once per instruction.",
            ),
        ],
        body: Body::Json(schema::<ContainerConfig>()),
        replies: &[
            reply(
                201,
                "Committed: the new image's ID.",
                Content::Json(schema::<CommitResponse>()),
            ),
            error(
                400,
                "No instance named, a bad name or change, or a file the layer cannot hold (a name starting with `.wh.`).",
            ),
            NO_SUCH_CONTAINER,
            error(
                409,
                "The instance serves HTTP and cannot be paused: commit with `pause=0`.",
            ),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/create",
        operation_id: "ContainerCreate",
        tag: "Container",
        summary: "Create an instance",
        params: &[query(
            "name",
            Value::Pattern(r"^(/?[a-zA-Z0-9][a-zA-Z0-9_.-]+)?$"),
            "The instance's name; none or empty: a generated one.",
        )],
        body: Body::Json(schema::<ContainerCreateRequest>()),
        replies: &[
            reply(
                201,
                "Created; a host network mode is answered with a warning.",
                Content::Json(schema::<ContainerCreateResponse>()),
            ),
            error(400, "A malformed body or value."),
            error(404, "No such image."),
            error(409, "The name is in use."),
            error(413, "A body over 1 MiB."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/containers/json",
        operation_id: "ContainerList",
        tag: "Container",
        summary: "List instances, newest first",
        params: &[
            query(
                "all",
                Value::Flag,
                "Every instance; otherwise the running ones (and any a `status` filter names).",
            ),
            query(
                "limit",
                Value::Pattern(r"^(-?[0-9]{1,9})?$"),
                "The newest N instances, whatever their state; 0 or less: no limit.",
            ),
            query(
                "size",
                Value::Flag,
                "Fill `SizeRw` (the bytes the instance wrote over its image; left out when none) and `SizeRootFs` (the image's size plus those).",
            ),
            query(
                "filters",
                Value::Filters(&[
                    many(
                        "status",
                        "created|restarting|running|removing|paused|exited|dead",
                    ),
                    many("name", FILTER_VALUE),
                    many("id", FILTER_VALUE),
                    many("label", FILTER_VALUE),
                    many("ancestor", FILTER_VALUE),
                    many("exited", "-?[0-9]{1,9}"),
                    many("health", "starting|healthy|unhealthy|none"),
                    one("is-task", "true|false|1|0"),
                    many("isolation", FILTER_VALUE),
                    many("network", FILTER_VALUE),
                    many("volume", FILTER_VALUE),
                    many("publish", "[1-9][0-9]{0,3}(/(tcp|udp))?"),
                    many("expose", "[1-9][0-9]{0,3}(/(tcp|udp))?"),
                ]),
                "Docker's `ps` filters: for every key, one of its values matches (every `label`). `status`, `name` (substring), `id` (prefix), `label` (`key` or `key=value`), `ancestor` (image name or ID), `exited` (exit code), `health`, `is-task`, `isolation`, `network`, `volume`, `publish` and `expose` (`PORT[-PORT][/PROTO]`; the spec generates single ports); `before` and `since` are left out here: they name an instance, 404 when none is.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(
                200,
                "The instances.",
                Content::JsonList(schema::<ContainerSummary>()),
            ),
            error(400, "A bad filter."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/prune",
        operation_id: "ContainerPrune",
        tag: "Container",
        summary: "Remove every instance that is not running",
        params: &[PRUNE_FILTERS],
        body: Body::None,
        replies: &[
            reply(
                200,
                "What was removed.",
                Content::Json(schema::<ContainerPruneResponse>()),
            ),
            error(400, "A bad filter."),
            error(500, "A bad `until`, or more than one (as dockerd answers)."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/networks/prune",
        operation_id: "NetworkPrune",
        tag: "Network",
        summary: "Remove every user-defined network no instance is on",
        params: &[PRUNE_FILTERS],
        body: Body::None,
        replies: &[
            reply(
                200,
                "The names of the networks removed (null when none).",
                Content::Json(schema::<NetworkPruneResponse>()),
            ),
            error(400, "A bad filter."),
            error(500, "A bad `until`, or more than one (as dockerd answers)."),
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/networks",
        operation_id: "NetworkList",
        tag: "Network",
        summary: "List networks: the predefined `host` and `none`, then the user-defined ones",
        params: &[query(
            "filters",
            Value::Filters(&[
                one("dangling", "true|false|1|0"),
                many("driver", FILTER_VALUE),
                many("id", FILTER_VALUE),
                many("label", FILTER_VALUE),
                many("name", FILTER_VALUE),
                many("scope", FILTER_VALUE),
                many("type", "custom|builtin"),
            ]),
            "`dangling` (`true`: a user-defined network no instance is on), `driver`, `id` and `name` (a part of either), `label` (`key` or `key=value`; all must hold), `scope` (`local`), `type` (`custom` or `builtin`).",
        )],
        body: Body::None,
        replies: &[
            reply(200, "The networks.", Content::JsonList(schema::<Network>())),
            error(400, "A bad filter."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/networks/create",
        operation_id: "NetworkCreate",
        tag: "Network",
        summary: "Create a network: a subnet of wrun's own (given, or the next free default pool) its instances get addresses from; nothing is served on it yet (docs/networks.md)",
        params: &[],
        body: Body::Json(schema::<NetworkCreateRequest>()),
        replies: &[
            reply(
                201,
                "Its ID.",
                Content::Json(schema::<NetworkCreateResponse>()),
            ),
            error(
                400,
                "A malformed body, IPv6, driver or IPAM options, an IP range, auxiliary addresses, more than one subnet, swarm's fields.",
            ),
            error(
                403,
                "A subnet overlapping another network's, or a gateway outside it.",
            ),
            error(
                404,
                "A driver other than `bridge` (dockerd's missing plugin).",
            ),
            error(409, "The name is taken."),
            error(413, "A body over 1 MiB."),
            error(
                500,
                "A bad name or subnet, or `overlay` (dockerd's words and status).",
            ),
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/networks/{id}",
        operation_id: "NetworkInspect",
        tag: "Network",
        summary: "Inspect a network, with the instances on it and their addresses",
        params: &[NETWORK_ID],
        body: Body::None,
        replies: &[
            reply(200, "The network.", Content::Json(schema::<Network>())),
            error(404, "No such network, or an ambiguous ID prefix."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Delete,
        path: "/networks/{id}",
        operation_id: "NetworkDelete",
        tag: "Network",
        summary: "Remove a user-defined network",
        params: &[NETWORK_ID],
        body: Body::None,
        replies: &[
            reply(204, "Removed.", Content::Empty),
            error(
                403,
                "A predefined network, or one an instance (even a stopped one) is on.",
            ),
            error(404, "No such network."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/networks/{id}/connect",
        operation_id: "NetworkConnect",
        tag: "Network",
        summary: "Put an instance on a user-defined network, with aliases; it gets the next free address of the subnet",
        params: &[NETWORK_ID],
        body: Body::Json(schema::<NetworkConnectRequest>()),
        replies: &[
            reply(200, "Connected.", Content::Empty),
            error(
                400,
                "A malformed body; an address, link, MAC or driver options asked for; an instance in `host` or `none` mode; a predefined network.",
            ),
            error(403, "A running instance already on it, or no address left."),
            error(404, "No such network or instance."),
            error(413, "A body over 1 MiB."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/networks/{id}/disconnect",
        operation_id: "NetworkDisconnect",
        tag: "Network",
        summary: "Take an instance off a user-defined network; its address is released",
        params: &[NETWORK_ID],
        body: Body::Json(schema::<NetworkDisconnectRequest>()),
        replies: &[
            reply(200, "Disconnected.", Content::Empty),
            error(400, "A malformed body, or the `host` network."),
            error(404, "No such network or instance."),
            error(413, "A body over 1 MiB."),
            error(
                500,
                "The instance is not on the network (dockerd's status).",
            ),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/build/prune",
        operation_id: "BuildPrune",
        tag: "Image",
        summary: "Remove the build cache: `wrun build` keeps none, so nothing is removed",
        params: &[PRUNE_FILTERS],
        body: Body::None,
        replies: &[
            reply(
                200,
                "Nothing removed.",
                Content::Json(schema::<BuildCachePruneResponse>()),
            ),
            error(400, "A bad filter."),
            error(500, "A bad `until`, or more than one (as dockerd answers)."),
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/containers/{id}/json",
        operation_id: "ContainerInspect",
        tag: "Container",
        summary: "Inspect an instance",
        params: &[
            ID,
            query(
                "size",
                Value::Flag,
                "Add `SizeRw` (0: the rootfs is read-only) and `SizeRootFs` (the image's size).",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(
                200,
                "The instance.",
                Content::Json(schema::<ContainerInspect>()),
            ),
            NO_SUCH_CONTAINER,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/start",
        operation_id: "ContainerStart",
        tag: "Container",
        summary: "Start an instance",
        params: &[ID],
        body: Body::None,
        replies: &[
            reply(204, "Started.", Content::Empty),
            reply(304, "Already running.", Content::Empty),
            error(400, "The module cannot run."),
            NO_SUCH_CONTAINER,
            error(409, "Paused, or being removed."),
            error(
                500,
                "Cannot start, e.g. a published host port is in use (the message names the address).",
            ),
            error(503, "Every instance slot is taken: retry when one is free."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/stop",
        operation_id: "ContainerStop",
        tag: "Container",
        summary: "Stop an instance (it ends at once: WASI has no signals)",
        params: &[ID],
        body: Body::None,
        replies: &[
            reply(204, "Stopped.", Content::Empty),
            reply(304, "Not running.", Content::Empty),
            NO_SUCH_CONTAINER,
            error(409, "Paused."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/restart",
        operation_id: "ContainerRestart",
        tag: "Container",
        summary: "Restart an instance",
        params: &[ID],
        body: Body::None,
        replies: &[
            reply(204, "Restarted.", Content::Empty),
            NO_SUCH_CONTAINER,
            error(
                500,
                "`Cannot restart container ID: …`: it could not be stopped or started again (as dockerd answers any failure of a restart).",
            ),
            error(503, "Every instance slot is taken."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/kill",
        operation_id: "ContainerKill",
        tag: "Container",
        summary: "End an instance at once; its exit code is 128 + the signal's number",
        params: &[
            ID,
            query(
                "signal",
                Value::Pattern(
                    r"^((SIG)?(HUP|INT|QUIT|KILL|USR1|USR2|TERM|STOP|hup|int|quit|kill|usr1|usr2|term|stop)|[1-9]|[1-5][0-9]|6[0-4])$",
                ),
                "A signal name (`SIGTERM`, `TERM`) or number (1-64); none: `SIGKILL`.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(204, "Killed.", Content::Empty),
            error(400, "A bad signal."),
            NO_SUCH_CONTAINER,
            error(409, "Not running."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/wait",
        operation_id: "ContainerWait",
        tag: "Container",
        summary: "Wait for an instance: the headers at once, the body when the condition holds",
        params: &[
            ID,
            query(
                "condition",
                Value::OneOf(&["not-running", "next-exit", "removed"]),
                "What to wait for; none: `not-running`.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(
                200,
                "The exit code (and error) of the run that ended.",
                Content::Json(schema::<WaitResponse>()),
            ),
            error(400, "A bad condition."),
            NO_SUCH_CONTAINER,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/pause",
        operation_id: "ContainerPause",
        tag: "Container",
        summary: "Stop scheduling an instance (it keeps its memory)",
        params: &[ID],
        body: Body::None,
        replies: &[
            reply(204, "Paused.", Content::Empty),
            NO_SUCH_CONTAINER,
            error(409, "Not running, or paused already."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/unpause",
        operation_id: "ContainerUnpause",
        tag: "Container",
        summary: "Resume a paused instance",
        params: &[ID],
        body: Body::None,
        replies: &[
            reply(204, "Resumed.", Content::Empty),
            NO_SUCH_CONTAINER,
            error(409, "Not paused."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/rename",
        operation_id: "ContainerRename",
        tag: "Container",
        summary: "Rename an instance",
        params: &[
            ID,
            required_query(
                "name",
                Value::Pattern(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$"),
                "The new name.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(204, "Renamed.", Content::Empty),
            error(400, "A bad name."),
            NO_SUCH_CONTAINER,
            error(409, "The name is in use, or is the current one."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/attach",
        operation_id: "ContainerAttach",
        tag: "Container",
        summary: "Attach to an instance's output (and stdin) until its next run ends",
        params: &[
            ID,
            query("logs", Value::Flag, "First send the log so far."),
            query("stream", Value::Flag, "Stream the output from now on."),
            STDOUT,
            STDERR,
            query(
                "stdin",
                Value::Flag,
                "On an upgraded connection, for an instance created with `OpenStdin`: what the client sends is the guest's stdin, its `CloseWrite` the end of file.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(
                101,
                "With `Upgrade: tcp`: the connection carries the multiplexed stream both ways.",
                Content::Empty,
            ),
            reply(
                200,
                "Without an upgrade: the multiplexed stream as the body.",
                Content::Multiplexed,
            ),
            error(400, "No stream chosen."),
            NO_SUCH_CONTAINER,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/containers/{id}/logs",
        operation_id: "ContainerLogs",
        tag: "Container",
        summary: "An instance's log",
        params: &[
            ID,
            STDOUT,
            STDERR,
            query(
                "follow",
                Value::Flag,
                "Keep streaming while the instance runs.",
            ),
            query(
                "tail",
                Value::Text,
                "The last N lines only; anything else (`all`, a negative or no number), as dockerd reads it: everything.",
            ),
            query(
                "since",
                Value::Pattern(UNIX_TIME_PATTERN),
                "Unix seconds (optional fraction; empty: no bound): the lines written from then.",
            ),
            query(
                "until",
                Value::Pattern(UNIX_TIME_PATTERN),
                "Unix seconds (optional fraction): the lines written before then; 0 or empty: no bound.",
            ),
            query(
                "timestamps",
                Value::Flag,
                "Start each line with its RFC 3339 time.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(200, "The log, streamed.", Content::Multiplexed),
            error(400, "No stream chosen, or a bad since or until."),
            NO_SUCH_CONTAINER,
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/containers/{id}/top",
        operation_id: "ContainerTop",
        tag: "Container",
        summary: "What runs in an instance: a row for the instance itself, then one per running exec",
        params: &[ID],
        body: Body::None,
        replies: &[
            reply(200, "The rows.", Content::Json(schema::<TopResponse>())),
            NO_SUCH_CONTAINER,
            error(409, "Not running."),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/containers/{id}/exec",
        operation_id: "ContainerExec",
        tag: "Exec",
        summary: "Make an exec: a module to run beside a running instance, sharing its filesystem, volumes and network grants",
        params: &[ID],
        body: Body::RequiredJson(schema::<ExecCreateRequest>()),
        replies: &[
            reply(
                201,
                "Made; start it with `/exec/{id}/start`.",
                Content::Json(schema::<ExecCreateResponse>()),
            ),
            error(
                400,
                "No body, no command, a TTY, a user, privileges, a bad Env pair or detach keys.",
            ),
            NO_SUCH_CONTAINER,
            error(
                409,
                "The instance is not running, is paused or is restarting.",
            ),
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/exec/{id}/start",
        operation_id: "ExecStart",
        tag: "Exec",
        summary: "Start an exec: detached, or with its output (and stdin) on the connection until it ends",
        params: &[EXEC_ID],
        body: Body::RequiredJson(schema::<ExecStartRequest>()),
        replies: &[
            reply(
                101,
                "With `Upgrade: tcp`: the connection carries the multiplexed stream both ways (the client's bytes are the exec's stdin when made with `AttachStdin`); a failure to start is a line in the stream, and exit code 126.",
                Content::Empty,
            ),
            reply(
                200,
                "Detached: started. Otherwise, without an upgrade: the multiplexed stream as the body.",
                Content::RawStream,
            ),
            error(400, "No body, or a TTY."),
            NO_SUCH_EXEC,
            error(
                409,
                "The exec was started before, or its instance is not running (paused, restarting).",
            ),
            error(
                500,
                "Detached: the exec could not start (its module, its working directory).",
            ),
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/exec/{id}/json",
        operation_id: "ExecInspect",
        tag: "Exec",
        summary: "An exec's state: running, exit code, command, instance",
        params: &[EXEC_ID],
        body: Body::None,
        replies: &[
            reply(200, "The exec.", Content::Json(schema::<ExecInspect>())),
            NO_SUCH_EXEC,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/exec/{id}/resize",
        operation_id: "ExecResize",
        tag: "Exec",
        summary: "Resize an exec's TTY: checked as dockerd checks it; there is no TTY to resize",
        params: &[
            EXEC_ID,
            required_query("h", Value::Pattern(ATOI), "Rows."),
            required_query("w", Value::Pattern(ATOI), "Columns."),
        ],
        body: Body::None,
        replies: &[
            reply(200, "Nothing to do.", Content::Empty),
            error(400, "A height or width that is not a number."),
            NO_SUCH_EXEC,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/containers/{id}/stats",
        operation_id: "ContainerStats",
        tag: "Container",
        summary: "Memory (linear memory and tables) and CPU time of an instance",
        params: &[
            ID,
            query(
                "stream",
                Value::Flag,
                "A sample per second while the instance runs (the default); false: one sample, measured over a second.",
            ),
            query(
                "one-shot",
                Value::Flag,
                "With `stream=false`: one sample at once, without the CPU interval.",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(
                200,
                "One sample per line.",
                Content::JsonLines(schema::<ContainerStats>()),
            ),
            NO_SUCH_CONTAINER,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/containers/{id}/changes",
        operation_id: "ContainerChanges",
        tag: "Container",
        summary: "What the instance changed in its image's filesystem (`docker diff`), sorted by path",
        params: &[ID],
        body: Body::None,
        replies: &[
            reply(
                200,
                "Each changed path: Kind 0 changed, 1 added, 2 deleted; `null` when none.",
                Content::JsonListOrNull(schema::<ContainerChange>()),
            ),
            NO_SUCH_CONTAINER,
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/containers/{id}/export",
        operation_id: "ContainerExport",
        tag: "Container",
        summary: "The instance's merged rootfs (image and writes) as a tar, streamed (`docker export`)",
        params: &[ID],
        body: Body::None,
        replies: &[
            reply(200, "The tar, streamed.", Content::Octets),
            NO_SUCH_CONTAINER,
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Head,
        path: "/containers/{id}/archive",
        operation_id: "ContainerArchiveInfo",
        tag: "Container",
        summary: "The stat of a path in the instance's rootfs, in a header (`docker cp`)",
        params: &[ID, ARCHIVE_PATH],
        body: Body::None,
        replies: &[
            reply(200, "The path's stat, in the header.", Content::PathStat),
            error(400, "No `path`."),
            error(
                404,
                "No such container, or nothing at the path (also a path with a NUL or a name over 255 bytes).",
            ),
            ARCHIVE_LOOKUP_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/containers/{id}/archive",
        operation_id: "ContainerArchive",
        tag: "Container",
        summary: "A path of the instance's rootfs as a tar (a directory with all below it), streamed (`docker cp` out)",
        params: &[ID, ARCHIVE_PATH],
        body: Body::None,
        replies: &[
            reply(
                200,
                "The tar, with the path's stat in the header.",
                Content::PathTar,
            ),
            error(400, "No `path`."),
            error(
                404,
                "No such container, or nothing at the path (also a path with a NUL or a name over 255 bytes).",
            ),
            ARCHIVE_LOOKUP_ERROR,
        ],
    },
    Route {
        verb: Verb::Put,
        path: "/containers/{id}/archive",
        operation_id: "PutContainerArchive",
        tag: "Container",
        summary: "Extract a tar into a directory of the instance's rootfs (`docker cp` in)",
        params: &[
            ID,
            ARCHIVE_PATH,
            query(
                "noOverwriteDirNonDir",
                Value::Flag,
                "Refuse to replace a directory with a non-directory or the other way round (otherwise the old node goes).",
            ),
            query(
                "copyUIDGID",
                Value::Flag,
                "Docker: give the files the instance's user. Refused when true: an instance has no users or file owners.",
            ),
        ],
        body: Body::Archive,
        replies: &[
            reply(200, "Extracted.", Content::Empty),
            error(
                400,
                "No `path`; `copyUIDGID`; a malformed or hostile tar (a name or link out of the destination, device or FIFO entries, oversized headers).",
            ),
            error(
                404,
                "No such container, or nothing at the path (also a path with a NUL or a name over 255 bytes).",
            ),
            error(
                500,
                "As dockerd: the path is not a directory, a symlink loop, the rootfs is read-only (for a path in it), the mount is `:ro` (`mounted volume is marked read-only`), `noOverwriteDirNonDir` refused a replacement; or the instance's size limit or the disk is full.",
            ),
        ],
    },
    Route {
        verb: Verb::Delete,
        path: "/containers/{id}",
        operation_id: "ContainerDelete",
        tag: "Container",
        summary: "Remove an instance",
        params: &[
            ID,
            query("force", Value::Flag, "Remove it even when running."),
            query(
                "v",
                Value::Flag,
                "Remove its anonymous volumes too (those no other instance mounts).",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(204, "Removed.", Content::Empty),
            NO_SUCH_CONTAINER,
            error(409, "Running (and not forced), paused, or being removed."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/system/df",
        operation_id: "SystemDataUsage",
        tag: "System",
        summary: "The space images, instances and volumes take",
        params: &[],
        body: Body::None,
        replies: &[
            reply(
                200,
                "Every image (with its instances), instance (with its sizes) and volume (with its size and the instances that mount it); no build cache.",
                Content::Json(schema::<DiskUsage>()),
            ),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/volumes",
        operation_id: "VolumeList",
        tag: "Volume",
        summary: "List volumes, by name",
        params: &[query(
            "filters",
            Value::Filters(&[
                one("dangling", "true|false|1|0"),
                many("name", FILTER_VALUE),
                many("driver", FILTER_VALUE),
                many("label", FILTER_VALUE),
            ]),
            "`dangling` (`true`: no instance mounts it), `name` (a part of the name), `driver`, `label` (`key` or `key=value`; all must hold).",
        )],
        body: Body::None,
        replies: &[
            reply(
                200,
                "The volumes.",
                Content::Json(schema::<VolumeListResponse>()),
            ),
            error(400, "A bad filter."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/volumes/create",
        operation_id: "VolumeCreate",
        tag: "Volume",
        summary: "Create a volume (a directory of the store); an existing one is answered as it is",
        params: &[],
        body: Body::Json(schema::<VolumeCreateRequest>()),
        replies: &[
            reply(201, "The volume.", Content::Json(schema::<Volume>())),
            error(
                400,
                "A malformed body, a name outside `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, or driver options (wrun mounts nothing).",
            ),
            error(404, "A driver other than `local`."),
            error(413, "A body over 1 MiB."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Post,
        path: "/volumes/prune",
        operation_id: "VolumePrune",
        tag: "Volume",
        summary: "Remove every volume no instance mounts (named ones too, as API 1.41)",
        params: &[query(
            "filters",
            Value::Filters(&[many("label", FILTER_VALUE), many("label!", FILTER_VALUE)]),
            "`label` and `label!` (`key` or `key=value`; all must hold).",
        )],
        body: Body::None,
        replies: &[
            reply(
                200,
                "What was removed.",
                Content::Json(schema::<VolumePruneResponse>()),
            ),
            error(400, "A bad filter."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Get,
        path: "/volumes/{name}",
        operation_id: "VolumeInspect",
        tag: "Volume",
        summary: "Inspect a volume",
        params: &[VOLUME_NAME],
        body: Body::None,
        replies: &[
            reply(200, "The volume.", Content::Json(schema::<Volume>())),
            error(404, "No such volume."),
            SERVER_ERROR,
        ],
    },
    Route {
        verb: Verb::Delete,
        path: "/volumes/{name}",
        operation_id: "VolumeDelete",
        tag: "Volume",
        summary: "Remove a volume and its data",
        params: &[
            VOLUME_NAME,
            query(
                "force",
                Value::Flag,
                "A missing volume is no error (one in use is still refused).",
            ),
        ],
        body: Body::None,
        replies: &[
            reply(204, "Removed.", Content::Empty),
            error(404, "No such volume."),
            error(409, "An instance (even a stopped one) mounts it."),
            SERVER_ERROR,
        ],
    },
];

const DESCRIPTION: &str = "\
The REST API `wrun daemon` serves on its Unix socket. It follows the Docker
Engine API for the routes listed here, so the stock `docker` client and
Docker's SDKs drive it; paths may also start with `/v1.NN` (a version newer
than the daemon's is refused with 400). A method the daemon does not serve
on a path is answered 404 `page not found`, as dockerd does.

Errors are JSON `{\"message\": \"…\"}`. Boolean query parameters read as
Docker's do: empty, `0`, `no`, `false` and `none` (any case) are false, any
other value true. `filters` is a JSON object, each key with a list of values
(`{\"status\":[\"exited\"]}`) or a set (`{\"status\":{\"exited\":true}}`).

Streamed answers: `application/vnd.docker.multiplexed-stream` is Docker's
frames (an 8-byte header: stream 1 or 2, three zero bytes, the big-endian
payload length; then the payload); JSON lines are one document per line,
sent as they happen; an attach with `Upgrade: tcp` is answered 101 and the
connection then carries the frames, as does an exec's start (its frames
labelled `application/vnd.docker.raw-stream`, as dockerd labels them).

What the schemas cannot say: a create body may carry every field of
Docker's, and wrun refuses with a 400 naming the field each option a wasm
instance cannot honour (User, Healthcheck, Privileged, CapAdd,
Devices, Dns, Links, ...; docs/daemon.md lists each decision); a log request
must name stdout or stderr or both; a start or restart whose module cannot
run fails with the instance, whatever the request (400 and 500, as dockerd
answers an OCI failure); an event or stats stream holds one document per
line, none when nothing happened.

Generated from the daemon's route table and wrun-api's types
(daemon/src/openapi.rs); do not edit by hand.
";

/// The OpenAPI document of [`ROUTES`].
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas: Vec<(String, RefOr<SchemaObject>)> = Vec::new();
    let mut add = |s: &Schema| {
        let name = (s.name)().into_owned();
        if !schemas.iter().any(|(n, _)| *n == name) {
            schemas.push((name, (s.own)()));
            (s.nested)(&mut schemas);
        }
    };
    add(&schema::<ErrorResponse>());
    for route in ROUTES {
        let mut op = OperationBuilder::new()
            .operation_id(Some(route.operation_id))
            .tag(route.tag)
            .summary(Some(route.summary))
            .parameters(Some(route.params.iter().map(parameter)));
        match &route.body {
            Body::None => {}
            Body::Json(s) => {
                add(s);
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(s.reference())).build(),
                        )
                        .build(),
                ));
            }
            Body::RequiredJson(s) => {
                add(s);
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .required(Some(Required::True))
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(s.reference())).build(),
                        )
                        .build(),
                ));
            }
            Body::Archive => {
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .description(Some(
                            "A tar (plain) of the files to extract into the directory `path` names.",
                        ))
                        .required(Some(Required::True))
                        .content(
                            "application/x-tar",
                            ContentBuilder::new().schema(Some(binary())).build(),
                        )
                        .build(),
                ));
            }
            Body::Rootfs => {
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .description(Some(
                            "A rootfs tar (plain or gzip): the files of the image, as `docker export` writes them.",
                        ))
                        .content(
                            "application/x-tar",
                            ContentBuilder::new().schema(Some(binary())).build(),
                        )
                        .build(),
                ));
            }
            Body::Tar => {
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .description(Some("An image tar (plain or gzip)."))
                        .required(Some(Required::True))
                        .content(
                            "application/x-tar",
                            ContentBuilder::new().schema(Some(binary())).build(),
                        )
                        .build(),
                ));
            }
        }
        let mut responses = ResponsesBuilder::new();
        let by_id = route
            .params
            .iter()
            .any(|p| p.place == Place::Path && p.name == "id");
        if by_id && !route.replies.iter().any(|r| r.status == 400) {
            responses = responses.response("400", error_response(AMBIGUOUS));
        }
        for r in route.replies {
            let about = if by_id && r.status == 400 {
                Cow::Owned(format!("{} Or: {AMBIGUOUS}", r.about))
            } else {
                Cow::Borrowed(r.about)
            };
            let mut response = ResponseBuilder::new().description(about);
            response = match &r.content {
                Content::Empty => response,
                Content::Text => response.content(
                    "text/plain",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                ),
                Content::Json(s) => {
                    add(s);
                    response.content(
                        "application/json",
                        ContentBuilder::new().schema(Some(s.reference())).build(),
                    )
                }
                Content::JsonList(s) => {
                    add(s);
                    response.content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(ArrayBuilder::new().items(s.reference())))
                            .build(),
                    )
                }
                Content::JsonLines(s) => {
                    add(s);
                    // One line is one document: a client reading the first
                    // (or only) line reads this schema.
                    response.content(
                        "application/json",
                        ContentBuilder::new().schema(Some(s.reference())).build(),
                    )
                }
                Content::Multiplexed => response.content(
                    MULTIPLEXED,
                    ContentBuilder::new().schema(Some(binary())).build(),
                ),
                Content::RawStream => response.content(
                    "application/vnd.docker.raw-stream",
                    ContentBuilder::new().schema(Some(binary())).build(),
                ),
                Content::Tar => response.content(
                    "application/x-tar",
                    ContentBuilder::new().schema(Some(binary())).build(),
                ),
                Content::JsonListOrNull(s) => {
                    add(s);
                    response.content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(
                                ArrayBuilder::new()
                                    .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
                                    .items(s.reference()),
                            ))
                            .build(),
                    )
                }
                Content::PathTar => path_stat_header(response).content(
                    "application/x-tar",
                    ContentBuilder::new().schema(Some(binary())).build(),
                ),
                Content::PathStat => path_stat_header(response),
                Content::Octets => response.content(
                    "application/octet-stream",
                    ContentBuilder::new().schema(Some(binary())).build(),
                ),
                Content::Error => error_content(response),
            };
            if route.operation_id == "ContainerCreate" && r.status == 201 {
                response = links_to(response, "/containers/{id}", "instance");
            }
            if route.operation_id == "ContainerExec" && r.status == 201 {
                response = links_to(response, "/exec/{id}", "exec");
            }
            responses = responses.response(r.status.to_string(), response.build());
        }
        paths.add_path_operation(
            route.path,
            vec![route.verb.http()],
            op.responses(responses.build()).build(),
        );
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("wrun daemon API")
                .version(wrun_api::API_VERSION)
                .description(Some(DESCRIPTION))
                .build(),
        )
        .servers(Some([ServerBuilder::new()
            .url("http://localhost")
            .description(Some(
                "unix:///run/wrun/wrun.sock (root) or $XDG_RUNTIME_DIR/wrun.sock",
            ))
            .build()]))
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .schemas_from_iter(sorted(schemas))
                .build(),
        ))
        .tags(Some(
            ["System", "Image", "Container", "Exec", "Network", "Volume"].map(Tag::new),
        ))
        .build()
}

fn sorted(mut schemas: Vec<(String, RefOr<SchemaObject>)>) -> Vec<(String, RefOr<SchemaObject>)> {
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas
}

/// [`document`] as YAML, ending in one newline: docs/openapi.yaml.
pub fn yaml() -> Result<String, impl std::error::Error> {
    // utoipa 5.5 writes a Link's fields in snake case; OpenAPI (and every
    // tool that follows links) spells them in camel case. The key is unique
    // to links: operations write `operationId` already.
    document().to_yaml().map(|yaml| {
        let fixed: Vec<String> = yaml
            .lines()
            .map(|l| {
                let indent = &l[..l.len() - l.trim_start().len()];
                match l.trim_start().strip_prefix("operation_id: ") {
                    Some(id) => format!("{indent}operationId: {id}"),
                    None => l.to_string(),
                }
            })
            .collect();
        format!("{}\n", fixed.join("\n").trim_end())
    })
}

/// The links from a created instance's `Id` to every route of it, which
/// stateful tests follow.
/// Links from an answer's `Id` to every route under `prefix` (the
/// `{id}` routes of the instance or the exec just made).
fn links_to(mut response: ResponseBuilder, prefix: &str, what: &str) -> ResponseBuilder {
    for route in ROUTES.iter().filter(|r| r.path.starts_with(prefix)) {
        response = response.link(
            route.operation_id,
            LinkBuilder::new()
                .operation_id(route.operation_id)
                .parameter("id", "$response.body#/Id")
                .description(format!(
                    "{} {} of the {what} created",
                    route.verb.as_str(),
                    route.path
                ))
                .build(),
        );
    }
    response
}

/// An `{id}` that is a prefix of several instances' IDs (dockerd's 400).
const AMBIGUOUS: &str = "An ID prefix more than one instance has.";

fn error_content(response: ResponseBuilder) -> ResponseBuilder {
    response.content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(schema::<ErrorResponse>().reference()))
            .build(),
    )
}

fn error_response(about: &str) -> utoipa::openapi::Response {
    error_content(ResponseBuilder::new().description(about)).build()
}

/// The `X-Docker-Container-Path-Stat` header of the archive routes.
fn path_stat_header(response: ResponseBuilder) -> ResponseBuilder {
    response.header(
        PATH_STAT_HEADER,
        utoipa::openapi::HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some(
                "Base64 of the path's stat as JSON: `{\"name\",\"size\",\"mode\" (Go's os.FileMode),\"mtime\",\"linkTarget\"}`.",
            ))
            .build(),
    )
}

fn binary() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("binary".into())))
}

fn parameter(p: &Param) -> Parameter {
    let place = match p.place {
        Place::Path => ParameterIn::Path,
        Place::Query | Place::RequiredQuery => ParameterIn::Query,
        Place::Header => ParameterIn::Header,
    };
    let required = match p.place {
        Place::Path | Place::RequiredQuery => Required::True,
        Place::Query | Place::Header => Required::False,
    };
    let string = ObjectBuilder::new().schema_type(Type::String);
    let schema: RefOr<SchemaObject> = match p.value {
        Value::Text if p.place == Place::Path || p.place == Place::RequiredQuery => {
            string.min_length(Some(1)).into()
        }
        Value::Text | Value::Flag => string.into(),
        Value::Pattern(re) => string.pattern(Some(re)).into(),
        Value::OneOf(words) => string.enum_values(Some(words.iter().copied())).into(),
        Value::Filters(keys) => string.pattern(Some(filters_pattern(keys))).into(),
        Value::Repeated => ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1)),
            )
            .min_items(Some(1))
            .into(),
    };
    let mut b = ParameterBuilder::new()
        .name(p.name)
        .parameter_in(place)
        .required(required)
        .description(Some(p.about))
        .schema(Some(schema));
    if matches!(p.value, Value::Repeated) {
        b = b.style(Some(ParameterStyle::Form)).explode(Some(true));
    }
    b.build()
}

/// The regular expression of a `filters` value with these keys: empty, or
/// a JSON object of lists or sets of values, without blanks. A key may come
/// twice (the last one counts, as in Go's and serde's JSON maps).
fn filters_pattern(keys: &[Filter]) -> String {
    if keys.is_empty() {
        return r"^(\{\})?$".into();
    }
    let entry = keys
        .iter()
        .map(|f| {
            let value = format!("\"(?:{})\"", f.value);
            let (list, set) = if f.many {
                (
                    format!("(?:{value}(?:,{value})*)?"),
                    format!("(?:{value}:true(?:,{value}:true)*)?"),
                )
            } else {
                (value.clone(), format!("{value}:true"))
            };
            format!("\"{}\":(?:\\[{list}\\]|\\{{{set}\\}})", f.key)
        })
        .collect::<Vec<_>>()
        .join("|");
    format!(r"^(\{{(?:(?:{entry})(?:,(?:{entry}))*)?\}})?$")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");

    fn generated() -> String {
        yaml().expect("the document serializes")
    }

    #[test]
    fn the_openapi_file_is_the_generated_document() {
        let fresh = generated();
        if std::env::var_os("WRUN_WRITE_OPENAPI").is_some() {
            std::fs::write(FILE, &fresh).expect("writing docs/openapi.yaml");
        }
        let committed = std::fs::read_to_string(FILE).unwrap_or_default();
        assert!(
            committed == fresh,
            "docs/openapi.yaml differs from the route table and wrun-api's types: regenerate it \
             with WRUN_WRITE_OPENAPI=1 cargo test -p wrun-daemon openapi"
        );
    }

    #[test]
    fn operation_ids_are_unique_and_links_name_them() {
        let mut ids: Vec<&str> = ROUTES.iter().map(|r| r.operation_id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "an operation ID is used twice");
        for r in ROUTES {
            let mut statuses: Vec<u16> = r.replies.iter().map(|x| x.status).collect();
            statuses.sort_unstable();
            statuses.dedup();
            assert_eq!(
                statuses.len(),
                r.replies.len(),
                "{} lists a status twice",
                r.operation_id
            );
        }
        let doc = serde_json::to_value(document()).unwrap();
        let links = &doc["paths"]["/containers/create"]["post"]["responses"]["201"]["links"];
        let linked = links
            .as_object()
            .expect("create links to the instance's routes");
        assert!(linked.contains_key("ContainerStart") && linked.contains_key("ContainerDelete"));
        assert!(
            linked
                .values()
                .all(|l| l["parameters"]["id"] == "$response.body#/Id")
        );
    }

    /// The template with values in place of its path parameters.
    fn concrete(template: &str) -> String {
        template
            .replace("{id}", "abc123")
            // A volume's name is one segment, an image's may be several.
            .replace(
                "{name}",
                if template.starts_with("/volumes/") {
                    "data1"
                } else {
                    "reg.example/app:1.0"
                },
            )
    }

    /// Whether a concrete path fits a template: `{id}` is one segment,
    /// `{name}` one or more (image names have slashes).
    fn matches_template(template: &str, path: &str) -> bool {
        fn fit(t: &[&str], p: &[&str]) -> bool {
            match (t.first(), p.first()) {
                (None, None) => true,
                (Some(&"{name}"), Some(_)) => (1..=p.len()).any(|n| fit(&t[1..], &p[n..])),
                (Some(&"{id}"), Some(_)) => fit(&t[1..], &p[1..]),
                (Some(a), Some(b)) if a == b => fit(&t[1..], &p[1..]),
                _ => false,
            }
        }
        let t: Vec<&str> = template.split('/').collect();
        let p: Vec<&str> = path.split('/').collect();
        fit(&t, &p)
    }

    /// Which variant of the router's answer a route is. Exhaustive: a new
    /// variant is a compile error here until it is counted in [`VARIANTS`].
    fn variant(r: &crate::Route) -> usize {
        use crate::{ContainerAction as A, Route as R};
        match r {
            R::Ping => 0,
            R::Version => 1,
            R::Info => 2,
            R::Shutdown => 3,
            R::ImagesList => 4,
            R::ImageInspect(_) => 5,
            R::ImageHistory(_) => 6,
            R::ImageTag(_) => 7,
            R::ImageRemove(_) => 8,
            R::ImagesSave(None) => 9,
            R::ImagesSave(Some(_)) => 10,
            R::ImagesLoad => 11,
            R::ImagesPrune => 12,
            R::ImagesCreate => 13,
            R::ContainerCreate => 14,
            R::ContainersList => 15,
            R::ContainersPrune => 16,
            R::Events => 17,
            R::NetworksPrune => 18,
            R::BuildPrune => 19,
            R::SystemDf => 20,
            R::VolumesList => 21,
            R::VolumeCreate => 22,
            R::VolumesPrune => 23,
            R::VolumeInspect(_) => 24,
            R::VolumeRemove(_) => 25,
            R::Container(_, a) => {
                26 + match a {
                    A::Inspect => 0,
                    A::Start => 1,
                    A::Stop => 2,
                    A::Kill => 3,
                    A::Wait => 4,
                    A::Logs => 5,
                    A::Attach => 6,
                    A::Remove => 7,
                    A::Restart => 8,
                    A::Pause => 9,
                    A::Unpause => 10,
                    A::Rename => 11,
                    A::Top => 12,
                    A::Stats => 13,
                    A::Changes => 14,
                    A::Export => 15,
                    A::ArchiveStat => 16,
                    A::ArchiveGet => 17,
                    A::ArchivePut => 18,
                }
            }
            R::Commit => 26 + 19,
            R::Build => 26 + 20,
            R::ImagesSearch => VARIANTS - 13,
            R::ImagePush(_) => VARIANTS - 12,
            R::Auth => VARIANTS - 11,
            R::NetworksList => VARIANTS - 10,
            R::NetworkCreate => VARIANTS - 9,
            R::NetworkInspect(_) => VARIANTS - 8,
            R::NetworkRemove(_) => VARIANTS - 7,
            R::NetworkConnect(_) => VARIANTS - 6,
            R::NetworkDisconnect(_) => VARIANTS - 5,
            R::ExecCreate(_) => VARIANTS - 4,
            R::ExecStart(_) => VARIANTS - 3,
            R::ExecInspect(_) => VARIANTS - 2,
            R::ExecResize(_) => VARIANTS - 1,
        }
    }

    /// How many answers [`variant`] tells apart.
    const VARIANTS: usize = 26 + 19 + 2 + 3 + 6 + 4;

    #[test]
    fn the_table_and_the_router_agree() {
        use hyper::Method;
        let methods = ["GET", "HEAD", "POST", "DELETE", "PUT", "PATCH"];
        let mut reached = std::collections::BTreeSet::new();
        for route in ROUTES {
            let path = concrete(route.path);
            for prefix in ["", "/v1.41"] {
                for method in methods {
                    let m = Method::from_bytes(method.as_bytes()).unwrap();
                    let routed = crate::route(&m, &format!("{prefix}{path}"));
                    let listed = ROUTES
                        .iter()
                        .any(|r| r.verb.as_str() == method && matches_template(r.path, &path));
                    match routed {
                        Ok(r) if listed => {
                            reached.insert(variant(&r));
                        }
                        Ok(r) => {
                            panic!("{method} {prefix}{path} is routed ({r:?}) but not in the table")
                        }
                        Err(_) if listed => panic!(
                            "{method} {prefix}{} is in the table but not routed",
                            route.path
                        ),
                        Err(_) => {}
                    }
                }
            }
        }
        // A method the Docker API never uses is dockerd's 404 on any path,
        // one wrun answers 501 for with another method too.
        for path in [
            "/networks/prune",
            "/networks",
            "/containers/abc/exec",
            "/_ping",
        ] {
            let e = crate::route(&Method::TRACE, path).unwrap_err();
            assert_eq!(e.status(), hyper::StatusCode::NOT_FOUND, "TRACE {path}");
        }
        // And a path served with another method gets the 404 too.
        for (method, path) in [
            (Method::PUT, "/networks/prune"),
            (Method::GET, "/containers/prune"),
        ] {
            let e = crate::route(&method, path).unwrap_err();
            assert_eq!(e.status(), hyper::StatusCode::NOT_FOUND, "{method} {path}");
        }
        let missing: Vec<usize> = (0..VARIANTS).filter(|v| !reached.contains(v)).collect();
        assert!(
            missing.is_empty(),
            "router answers {missing:?} (see `variant`) have no route in the table"
        );
    }

    /// The query keys the handlers read: `query.get("…")`, `query.flag("…")`
    /// and `query.all("…")` in daemon/src.
    fn keys_read() -> Vec<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("openapi.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for call in ["query.get(\"", "query.flag(\"", "query.all(\""] {
                for (at, _) in text.match_indices(call) {
                    let rest = &text[at + call.len()..];
                    let key = &rest[..rest.find('"').unwrap()];
                    let file = path.file_name().unwrap().to_string_lossy().into_owned();
                    keys.push((file, key.to_string()));
                }
            }
        }
        keys
    }

    #[test]
    fn every_query_key_a_handler_reads_is_documented() {
        let keys = keys_read();
        assert!(
            keys.iter().any(|(_, k)| k == "filters"),
            "the scan finds the handlers' keys"
        );
        for (file, key) in keys {
            assert!(
                ROUTES
                    .iter()
                    .flat_map(|r| r.params)
                    .any(|p| p.name == key && p.place != Place::Path),
                "daemon/src/{file} reads the query key {key:?}, which no route of the table documents"
            );
        }
    }

    #[test]
    fn filters_patterns_take_both_of_dockers_forms() {
        let re = filters_pattern(&[
            many("status", "running|exited"),
            one("dangling", "true|false"),
        ]);
        // No regex engine in the daemon's dependencies: the shape is checked
        // by schemathesis against the daemon; here, what the pattern says.
        assert!(re.starts_with(r"^(\{") && re.ends_with(r"\})?$"), "{re}");
        assert!(
            re.contains(r#""status":(?:\[(?:"(?:running|exited)""#),
            "{re}"
        );
        assert!(re.contains(r#":true(?:,"#), "{re}");
        assert!(
            re.contains(r#""dangling":(?:\["(?:true|false)"\]|\{"(?:true|false)":true\})"#),
            "{re}"
        );
        assert_eq!(filters_pattern(&[]), r"^(\{\})?$");
    }
}
