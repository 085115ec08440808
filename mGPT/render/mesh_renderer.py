"""Offscreen OpenGL rendering of a skinned triangle mesh, with no window, no X and no GPU needed.

moderngl (a 1 MB wheel) opens a standalone EGL context: the GPU's driver where there is one (Colab
GPU runtimes), Mesa's llvmpipe software rasteriser on the CPU otherwise (CI, Colab CPU runtimes).
VTK 9.7 (through pyvista) also renders headless with EGL or OSMesa, but its wheels take 565 MB, its
first frame some 2 s, and with new vertex positions every frame it took about 10x as long per frame
as this shader on the same loaded machine (a one-off check, 512 x 512, not kept as a benchmark);
pyrender needs PyOpenGL and a process-wide PYOPENGL_PLATFORM set before import. Here the whole
scene is one small shader.

Skinning happens in the vertex shader: the mesh's rest vertices, normals and 4 joint weights each
sit on the GPU, and each frame only uploads one 3x4 matrix per joint. A mesh that is posed on the
CPU instead (SMPL-X, whose pose blend shapes a shader cannot apply) uploads its vertices each frame
and is drawn through the same shader with one identity bone, so both get the same camera and light.

The camera is orthographic, so framing is the same arithmetic as the stick figure's; the light is
fixed to the camera (a key light from the upper left, a fill from the right, and ambient), so every
view is lit alike. Output is deterministic: the same pose gives the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mGPT.render.avatar import MeshAvatar, PosedClip, Skin

MAX_BONES = 64
DEPTH_RANGE = 3.0  # metres either side of the origin along the view direction that are kept
MESH_COLOUR = (0.80, 0.62, 0.44)  # light wood, for both avatars

# (screen right, screen up) in SMPL-X coordinates: front looks from +z, side from the signer's right (-x).
VIEWS = {"front": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)), "side": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0))}

VERTEX_SHADER = """
#version 330
uniform vec4 bones[3 * MAX_BONES];   // per joint the rows of [R | t]: rest vertex -> posed vertex
uniform mat3 view;            // rows: screen right, screen up, towards the camera
uniform vec2 centre;          // screen point at the middle of the image, metres
uniform vec2 half_extent;     // half the width and height the image shows, metres
in vec3 in_position;
in vec3 in_normal;
in ivec4 in_joints;
in vec4 in_weights;
out vec3 camera_normal;
void main() {
    vec4 p = vec4(in_position, 1.0);
    vec4 n = vec4(in_normal, 0.0);
    vec3 position = vec3(0.0);
    vec3 normal = vec3(0.0);
    for (int k = 0; k < 4; ++k) {
        int j = 3 * in_joints[k];
        vec3 rows_p = vec3(dot(bones[j], p), dot(bones[j + 1], p), dot(bones[j + 2], p));
        vec3 rows_n = vec3(dot(bones[j], n), dot(bones[j + 1], n), dot(bones[j + 2], n));
        position += in_weights[k] * rows_p;
        normal += in_weights[k] * rows_n;
    }
    vec3 camera = view * position;
    gl_Position = vec4((camera.xy - centre) / half_extent, -camera.z / DEPTH_RANGE, 1.0);
    camera_normal = view * normal;
}
""".replace("MAX_BONES", str(MAX_BONES)).replace("DEPTH_RANGE", f"{DEPTH_RANGE:.1f}")

FRAGMENT_SHADER = """
#version 330
uniform vec3 colour;
in vec3 camera_normal;
out vec4 fragment;
void main() {
    vec3 n = normalize(camera_normal);
    if (n.z < 0.0) n = -n;  // seen from behind (thin parts, either winding): light the side we see
    vec3 key = normalize(vec3(-0.45, 0.55, 0.70));
    vec3 fill = normalize(vec3(0.70, 0.10, 0.70));
    float diffuse = 0.30 + 0.62 * max(dot(n, key), 0.0) + 0.22 * max(dot(n, fill), 0.0);
    float specular = 0.12 * pow(max(dot(n, normalize(key + vec3(0.0, 0.0, 1.0))), 0.0), 24.0);
    fragment = vec4(min(colour * diffuse + specular, 1.0), 1.0);
}
"""


class GLUnavailable(RuntimeError):
    """No offscreen OpenGL context could be created (no EGL library, or no driver behind it)."""


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted vertex normals (..., V, 3) of a mesh posed as `vertices` (..., V, 3), faces (F, 3)."""
    corners = vertices[..., faces, :]  # (..., F, 3, 3)
    face_normals = torch.linalg.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals.index_add_(-2, faces[:, corner], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1)


def closed_and_consistent(faces: np.ndarray) -> bool:
    """Whether a mesh's faces (F, 3) close it, every face wound alike: each directed edge occurs once,
    and so does its reverse."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return False
    starts, ends = faces.reshape(-1), np.roll(faces, -1, axis=1).reshape(-1)  # the edges a->b, b->c, c->a
    count = int(faces.max()) + 1
    directed = np.unique(starts * count + ends)
    return len(directed) == len(starts) and np.array_equal(directed, np.sort(ends * count + starts))


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """The volume a closed mesh (V, 3), faces (F, 3) encloses: positive when its faces wind outwards."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]  # (F, 3, 3)
    return float(np.einsum("fi,fi->f", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0)


def create_context():
    """A standalone offscreen OpenGL 3.3 context, or GLUnavailable saying why not."""
    try:
        import moderngl

        # the runtime libraries' names: glcontext's default, libEGL.so, comes only with the -dev packages
        return moderngl.create_context(standalone=True, backend="egl", require=330, libgl="libGL.so.1",
                                       libegl="libEGL.so.1")
    except Exception as error:  # ImportError, missing libEGL, no usable EGL device: all mean "no GL here"
        raise GLUnavailable(f"{type(error).__name__}: {error}") from error


@dataclass
class MeshBuffers:
    """One clip's mesh on the GPU: its vertex buffers and a vertex array per part (body, left, right)."""

    vertex_buffers: dict[str, Any]
    arrays: dict[str, Any]
    cull_back_faces: bool  # closed and wound outwards: no back face can be seen from outside


class MeshRenderer:
    """One GL context and shader for one avatar; draws its posed clips into images of any size."""

    def __init__(self, avatar: MeshAvatar) -> None:
        self.ctx = create_context()
        try:
            self.program = self.ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        except Exception as error:  # a driver that cannot compile the shader is as good as none
            self.ctx.release()
            raise GLUnavailable(f"the shader does not compile here: {error}") from error
        self.program["colour"].value = MESH_COLOUR
        # faces in order of their first vertex: llvmpipe then re-shades far fewer vertices (some 1.5x faster)
        # a part without faces (a hand the mesh does not model) is drawn as nothing: GL has no empty buffers
        self.indices = {part: self.ctx.buffer(np.ascontiguousarray(part_faces[np.argsort(part_faces.min(axis=1),
                                                                                         kind="stable")],
                                                                   dtype=np.int32).tobytes())
                        for part, part_faces in {"body": avatar.panel_faces, **avatar.hand_faces}.items()
                        if len(part_faces)}
        self.faces = torch.as_tensor(np.asarray(avatar.faces, dtype=np.int64))  # for normals of CPU-posed meshes
        self.closed = closed_and_consistent(avatar.faces)  # then a clip whose rest winds outwards is culled
        self.targets: dict[tuple[int, int], Any] = {}

    def _target(self, width: int, height: int) -> Any:
        """A framebuffer with depth per image size. No multisampling: on llvmpipe 4x costs some 5x the
        frame, and at inset magnification the fingers' edges read well without it."""
        if (width, height) not in self.targets:
            # RGBA: llvmpipe's 3-byte pixel formats take a slow path
            self.targets[(width, height)] = self.ctx.framebuffer(
                color_attachments=[self.ctx.renderbuffer((width, height), 4)],
                depth_attachment=self.ctx.depth_renderbuffer((width, height)))
        return self.targets[(width, height)]

    def load(self, skin: Skin) -> MeshBuffers:
        """Put a clip's rest vertices, normals and skin weights on the GPU."""
        data = {"in_position": (skin.rest, np.float32, "3f"), "in_normal": (skin.normals, np.float32, "3f"),
                "in_joints": (skin.joints, np.int32, "4i"), "in_weights": (skin.weights, np.float32, "4f")}
        buffers = {name: self.ctx.buffer(np.ascontiguousarray(values, dtype=dtype).tobytes(), dynamic=True)
                   for name, (values, dtype, _) in data.items()}
        content = [(buffers[name], layout, name) for name, (_, _, layout) in data.items()]
        arrays = {part: self.ctx.vertex_array(self.program, content, index_buffer=indices, index_element_size=4)
                  for part, indices in self.indices.items()}
        cull = self.closed and signed_volume(skin.rest, self.faces.numpy()) > 0.0
        return MeshBuffers(buffers, arrays, cull)

    def pose(self, mesh: MeshBuffers, clip: PosedClip, t: int) -> None:
        """Set frame `t` of a clip: its joint matrices, or, for a CPU-posed mesh, its vertices."""
        if clip.bones is not None:
            bones = clip.bones[t]  # (J, 3, 4)
            if len(bones) > MAX_BONES:
                raise ValueError(f"the shader skins at most {MAX_BONES} joints, the mesh has {len(bones)}")
        else:
            vertices = torch.as_tensor(clip.vertices[t], dtype=torch.float32)  # (V, 3)
            mesh.vertex_buffers["in_position"].write(vertices.numpy().tobytes())
            mesh.vertex_buffers["in_normal"].write(vertex_normals(vertices, self.faces).numpy().tobytes())
            bones = np.eye(3, 4, dtype=np.float32)[None]  # one identity bone
        padded = np.zeros((MAX_BONES, 3, 4), np.float32)  # GL takes the uniform array whole
        padded[: len(bones)] = bones
        self.program["bones"].write(padded.tobytes())

    def draw(self, mesh: MeshBuffers, part: str, view: str, limits: np.ndarray, size: tuple[int, int],
             background: tuple[float, float, float]) -> np.ndarray:
        """Draw the posed mesh's `part` ("body", "left", "right") as (H, W, 3) uint8.

        `limits` (2, 2) are the screen-space (low, high) of the image's horizontal and vertical axes,
        in metres, as matplotlib axis limits; `size` is (W, H).
        """
        right, up = (np.array(axis) for axis in VIEWS[view])
        view_rows = np.stack([right, up, np.cross(right, up)]).astype(np.float32)
        self.program["view"].write(view_rows.T.tobytes())  # GLSL matrices are column-major
        self.program["centre"].value = tuple(float(x) for x in limits.mean(axis=1))
        self.program["half_extent"].value = tuple(float(x) for x in (limits[:, 1] - limits[:, 0]) / 2)
        target = self._target(*size)
        target.use()
        self.ctx.enable(self.ctx.DEPTH_TEST)
        # GL drops back faces (counter-clockwise is its front) before they are drawn: on llvmpipe that halves a
        # body panel's time, for the same pixels
        if mesh.cull_back_faces:
            self.ctx.enable(self.ctx.CULL_FACE)
        else:
            self.ctx.disable(self.ctx.CULL_FACE)
        target.clear(*background, 1.0)
        if part in mesh.arrays:
            mesh.arrays[part].render()
        image = np.frombuffer(target.read(components=3), dtype=np.uint8).reshape(size[1], size[0], 3)
        return image[::-1]  # GL's rows go bottom up

    def release(self) -> None:
        self.ctx.release()
