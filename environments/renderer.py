"""The moderngl renderer: one instanced draw per mesh per eye, driven only by :class:`SceneState`.

Per frame the renderer writes two small uniform blocks (one per eye) from
preallocated arrays and issues a fixed, short list of draws: sky, the opaque
meshes, the sorted glass, the panel and the fade. Level, environment and dial
changes rebuild the instance buffers (rare); text changes re-rasterise the
panel into its one texture (rare). Nothing is created per frame.

Within one environment every change of its dials (a therapist's override, a
new level, the intensity ramp) is eased: the shown values travel to the new
ones in :data:`EASE_STEPS` rebuilds over :data:`EASE_S` seconds, gently at
both ends, so nothing pops (a higher balcony rises in small steps instead of
jumping). A new environment (entering the safe place) is shown at once; the
runtime's fade covers that switch.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import moderngl
import numpy as np

from environments import meshes, panel_text, registry, shaders
from environments.environment import EnvironmentShader
from environments.errors import RenderError
from environments.scene_build import DEFAULT_FOVY_DEG, INSTANCE_FLOATS, PACER, SceneBuild
from environments.scene_state import SceneState

log = logging.getLogger(__name__)

SHADOW_PX = 2048
INSTANCE_FORMAT = "3f 3f 4f 4f 4f 3f 3f 4f/i"
INSTANCE_ATTRS = ("i_offset", "i_scale", "i_quat", "i_group", "i_motion", "i_color", "i_mat", "i_anim")
UBO_FLOATS = 3 * 16 + 8 * 4
NEAR_M = 0.05
FAR_M = 2500.0
PANEL_DISTANCE_M = 1.4
PACER_DISTANCE_M = 2.5
PANEL_EYE_HEIGHT_M = 1.2
EASE_S = 1.5  # how long a dial change takes to arrive on screen
EASE_STEPS = 12  # rebuilds along the way (each is a bulk rebuild of the instance arrays)
STANDING_EYE_M = 1.65  # HeadPose.default: a standing patient's eye height


def perspective(fovy_rad: float, aspect: float, near: float = NEAR_M, far: float = FAR_M) -> np.ndarray:
    """A symmetric OpenGL projection (math convention: ``clip = P @ eye``)."""
    f = 1.0 / math.tan(fovy_rad / 2)
    p = np.zeros((4, 4))
    p[0, 0] = f / aspect
    p[1, 1] = f
    p[2, 2] = (far + near) / (near - far)
    p[2, 3] = 2 * far * near / (near - far)
    p[3, 2] = -1.0
    return p


def translation(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def rotation_y(yaw_rad: float) -> np.ndarray:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    m = np.eye(4)
    m[0, 0], m[0, 2], m[2, 0], m[2, 2] = c, s, -s, c
    return m


def rotation_x(pitch_rad: float) -> np.ndarray:
    c, s = math.cos(pitch_rad), math.sin(pitch_rad)
    m = np.eye(4)
    m[1, 1], m[1, 2], m[2, 1], m[2, 2] = c, -s, s, c
    return m


def look_at_ortho(center: np.ndarray, direction: np.ndarray, radius: float) -> np.ndarray:
    """The sun's orthographic view-projection covering a sphere of ``radius`` around ``center``."""
    d = direction / np.linalg.norm(direction)
    eye = center + d * radius * 2
    f = -d
    up = np.array([0.0, 0.0, 1.0]) if abs(f[1]) > 0.99 else np.array([0.0, 1.0, 0.0])
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = s, u, -f
    view[:3, 3] = -view[:3, :3] @ eye
    proj = np.eye(4)
    proj[0, 0] = proj[1, 1] = 1.0 / radius
    near, far = 0.1, radius * 4
    proj[2, 2] = -2.0 / (far - near)
    proj[2, 3] = -(far + near) / (far - near)
    return proj @ view


@dataclass(slots=True)
class HeadPose:
    """What a display tells the renderer each frame; arrays are preallocated and updated in place.

    ``tracking_from_head``: the head in the display's tracking space (standing
    origin at the floor). ``head_from_eye[i]`` and ``proj[i]`` per eye (math
    convention, ``clip = proj @ eye``). ``tracked`` displays (OpenVR) set the
    head pose themselves; untracked ones get the scene's suggested gaze pitch.
    """

    tracking_from_head: np.ndarray
    head_from_eye: np.ndarray  # (2, 4, 4)
    proj: np.ndarray  # (2, 4, 4)
    tracked: bool = False

    @classmethod
    def default(cls, eye_size: tuple[int, int], *, ipd_m: float = 0.064, eye_height_m: float = STANDING_EYE_M,
                fovy_deg: float = DEFAULT_FOVY_DEG) -> HeadPose:
        """A standing patient looking ahead, with a headset-like field of view (headless, desktop)."""
        w, h = eye_size
        proj = perspective(math.radians(fovy_deg), w / h)
        return cls(
            tracking_from_head=translation(0.0, eye_height_m, 0.0),
            head_from_eye=np.stack([translation(-ipd_m / 2, 0, 0), translation(ipd_m / 2, 0, 0)]),
            proj=np.stack([proj, proj]),
        )


class _Eye:
    """Per-eye render target (MSAA or not), its resolved texture and its uniform block."""

    def __init__(self, ctx: moderngl.Context, size: tuple[int, int], msaa: int) -> None:
        self.texture = ctx.texture(size, 4)
        self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.resolve_fbo = ctx.framebuffer(color_attachments=[self.texture])
        if msaa > 0:
            self._color_rb = ctx.renderbuffer(size, 4, samples=msaa)
            self._depth_rb = ctx.depth_renderbuffer(size, samples=msaa)
            self.fbo = ctx.framebuffer(color_attachments=[self._color_rb], depth_attachment=self._depth_rb)
        else:
            self._color_rb = None
            self._depth_rb = ctx.depth_renderbuffer(size)
            self.fbo = ctx.framebuffer(color_attachments=[self.texture], depth_attachment=self._depth_rb)
        self.msaa = msaa
        self.ubo_data = np.zeros(UBO_FLOATS, np.float32)
        self.ubo = ctx.buffer(reserve=UBO_FLOATS * 4)
        # Views into ubo_data (created once) so per-frame writes go straight into it.
        self.vp_t = self.ubo_data[0:16].reshape(4, 4)
        self.ivp_t = self.ubo_data[16:32].reshape(4, 4)
        self.light_t = self.ubo_data[32:48].reshape(4, 4)
        self.cam = self.ubo_data[48:52]
        self.world_from_eye = np.eye(4)
        self.view = np.eye(4)
        self.tmp = np.eye(4)
        self.proj_inv = np.eye(4)
        self.proj_seen = np.zeros((4, 4))
        self.proj_zoomed = np.zeros((4, 4))

    def release(self) -> None:
        for obj in (self.fbo, self.resolve_fbo, self.texture, self._depth_rb, self._color_rb, self.ubo):
            if obj is not None:
                obj.release()


class Renderer:
    """Draws :class:`SceneState` frames into one texture per eye (what displays present or submit)."""

    def __init__(self, ctx: moderngl.Context, eye_size: tuple[int, int], *, msaa: int = 0, stereo: bool = True) -> None:
        if msaa not in (0, 2, 4, 8):
            raise RenderError(f"msaa {msaa!r} is not supported: use 0, 2, 4 or 8")
        max_samples = int(ctx.info.get("GL_MAX_SAMPLES", 4))
        if msaa > max_samples:
            raise RenderError(f"msaa {msaa} exceeds this GPU's maximum of {max_samples}: use --msaa {max_samples}")
        self.ctx = ctx
        self.eye_size = (int(eye_size[0]), int(eye_size[1]))
        self.msaa = msaa
        self.eye_count = 2 if stereo else 1
        self._eyes = [_Eye(ctx, self.eye_size, msaa) for _ in range(self.eye_count)]
        self.eye_textures = tuple(e.texture for e in self._eyes)

        # Scene and shadow programs per environment shader (compiled on first use, kept for switches back).
        self._programs: dict[EnvironmentShader, tuple[moderngl.Program, moderngl.Program]] = {}
        self._shader_key: EnvironmentShader | None = None
        self._scene_prog, self._shadow_prog = self._programs_for(EnvironmentShader())
        self._shader_key = EnvironmentShader()
        self._sky_prog = ctx.program(vertex_shader=shaders.FULLSCREEN_VS, fragment_shader=shaders.SKY_FS)
        self._fade_prog = ctx.program(vertex_shader=shaders.FULLSCREEN_VS, fragment_shader=shaders.FADE_FS)
        self._panel_prog = ctx.program(vertex_shader=shaders.PANEL_VS, fragment_shader=shaders.PANEL_FS)
        for prog in (self._sky_prog, self._fade_prog, self._panel_prog):
            prog["Frame"].binding = 0
        self._panel_prog["u_panel"].value = 2
        self._marker_u = self._panel_prog["u_marker"]
        self._marker_u.value = (-1.0, *panel_text.SCALE_UV)
        self._marker = -1.0

        # Meshes and their instance buffers (grown on rebuild when a level needs more room).
        self._mesh_vbos: dict[str, moderngl.Buffer] = {}
        self._mesh_counts: dict[str, int] = {}
        self._inst_bufs: dict[str, moderngl.Buffer] = {}
        self._inst_caps: dict[str, int] = {}
        self._vaos: dict[str, moderngl.VertexArray] = {}
        self._shadow_vaos: dict[str, moderngl.VertexArray] = {}
        self._inst_mesh: dict[str, str] = {}
        for name, data in meshes.build_all().items():
            self._mesh_vbos[name] = ctx.buffer(data.tobytes())
            self._mesh_counts[name] = len(data)
            self._alloc_instances(name, 1024)
        self._alloc_instances("glass", 64, mesh="cube")
        self._empty_vao = ctx.vertex_array(self._sky_prog, [])
        self._fade_vao = ctx.vertex_array(self._fade_prog, [])
        self._panel_vbo = ctx.buffer(np.array([0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1], np.float32).tobytes())
        self._panel_vao = ctx.vertex_array(self._panel_prog, [(self._panel_vbo, "2f", "in_uv")])
        self._panel_tex = ctx.texture(panel_text.PANEL_PX, 4)
        self._panel_tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        self._panel_visible = False
        self._panel_key: tuple[str | None, bool] | None = None

        self._shadow_tex = ctx.depth_texture((SHADOW_PX, SHADOW_PX))
        self._shadow_tex.compare_func = "<="
        self._shadow_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self._shadow_fbo = ctx.framebuffer(depth_attachment=self._shadow_tex)

        self._flags_opaque = moderngl.DEPTH_TEST | moderngl.CULL_FACE
        self._flags_blend = moderngl.DEPTH_TEST | moderngl.BLEND
        self._flags_overlay = moderngl.BLEND
        self._flags_none = moderngl.NOTHING

        # Built scene and what it was built from.
        self._build: SceneBuild | None = None
        self._build_key: tuple | None = None
        self._draw_list: tuple[tuple[moderngl.VertexArray, int, int], ...] = ()
        self._shadow_list: tuple[tuple[moderngl.VertexArray, int, int], ...] = ()
        self._glass_count = 0
        self._glass_rows = np.zeros((0, INSTANCE_FLOATS), np.float32)
        self._glass_sorted = np.zeros((0, INSTANCE_FLOATS), np.float32)
        self._glass_centres = np.zeros((0, 3))
        self._glass_dist = np.zeros(0)
        self._sort_cam = np.full(3, np.inf)
        self._sort_delta = np.zeros(3)
        self._shadow_dirty = True
        self._world_from_tracking = np.eye(4)
        self._anchor = np.eye(4)
        self._view_anchor = np.eye(4)
        self._tmp4 = np.eye(4)
        self._fade = 0.0
        # Dials: what is shown, where it is going, and the ease between them (see the module docstring).
        self._env_shown = ""
        self._level_shown = -1
        self._shown: dict[str, float] = {}
        self._ease_from: dict[str, float] = {}
        self._ease_to: dict[str, float] = {}
        self._ease_t0: float | None = None
        self._ease_step = EASE_STEPS
        self._view_zoom = np.eye(4)
        self._zoom_on = False
        self._base_draws = 0
        self.shadow_draw_calls = 0
        self.instances = 0
        self.environment = ""
        self.level = -1
        self.rebuilds = 0

    # ----------------------------------------------------------------- resources
    def _programs_for(self, shader: EnvironmentShader) -> tuple[moderngl.Program, moderngl.Program]:
        """The scene and shadow programs with this environment's shader hooks (compiled once, then cached)."""
        progs = self._programs.get(shader)
        if progs is None:
            vs, fs, shadow_vs = shaders.scene_sources(shader.vertex, shader.fragment)
            try:
                scene = self.ctx.program(vertex_shader=vs, fragment_shader=fs)
                shadow = self.ctx.program(vertex_shader=shadow_vs, fragment_shader=shaders.SHADOW_FS)
            except Exception as exc:  # moderngl raises a plain Error with the driver's log
                raise RenderError(f"an environment's shader does not compile: {exc}") from exc
            for prog in (scene, shadow):
                prog["Frame"].binding = 0
            scene["u_shadow"].value = 1
            progs = self._programs[shader] = (scene, shadow)
        return progs

    def _use_shader(self, shader: EnvironmentShader) -> None:
        """Switch to an environment's programs: the instance buffers stay, their vertex arrays are remade."""
        if shader == self._shader_key:
            return
        self._scene_prog, self._shadow_prog = self._programs_for(shader)
        self._shader_key = shader
        for name in list(self._inst_bufs):
            self._make_vaos(name)

    def _make_vaos(self, name: str) -> None:
        for d in (self._vaos, self._shadow_vaos):
            if name in d:
                d.pop(name).release()
        buf = self._inst_bufs[name]
        vbo = self._mesh_vbos[self._inst_mesh.get(name, name)]
        content = [(vbo, "3f 3f", "in_pos", "in_normal"), (buf, INSTANCE_FORMAT, *INSTANCE_ATTRS)]
        # skip_errors: an attribute the environment's shader does not read (i_anim without env_vertex) is fine.
        self._vaos[name] = self.ctx.vertex_array(self._scene_prog, content, skip_errors=True)
        self._shadow_vaos[name] = self.ctx.vertex_array(
            self._shadow_prog, [(vbo, "3f 12x", "in_pos"), (buf, INSTANCE_FORMAT, *INSTANCE_ATTRS)], skip_errors=True
        )

    def _alloc_instances(self, name: str, capacity: int, mesh: str | None = None) -> None:
        self._inst_mesh[name] = mesh or name
        old = self._inst_bufs.get(name)
        if old is not None:
            old.release()
        self._inst_bufs[name] = self.ctx.buffer(reserve=capacity * INSTANCE_FLOATS * 4, dynamic=True)
        self._inst_caps[name] = capacity
        self._make_vaos(name)

    def _upload(self, name: str, rows: np.ndarray, mesh: str | None = None) -> None:
        if len(rows) > self._inst_caps[name]:
            self._alloc_instances(name, int(2 ** math.ceil(math.log2(len(rows)))), mesh=mesh)
        if len(rows):
            self._inst_bufs[name].write(np.ascontiguousarray(rows, np.float32))

    def release(self) -> None:
        """Free every GL object this renderer created."""
        for eye in self._eyes:
            eye.release()
        for d in (self._vaos, self._shadow_vaos, self._inst_bufs, self._mesh_vbos):
            for obj in d.values():
                obj.release()
        for scene, shadow in self._programs.values():
            scene.release()
            shadow.release()
        for obj in (self._empty_vao, self._fade_vao, self._panel_vao, self._panel_vbo, self._panel_tex,
                    self._shadow_fbo, self._shadow_tex, self._sky_prog, self._fade_prog, self._panel_prog):
            obj.release()

    # ----------------------------------------------------------------- state
    def set_state(self, state: SceneState) -> None:
        """Adopt a scene state: the environment it names (its safe place when ``safe_place`` is set), eased dials.

        A state flagged ``safe_place`` whose environment is a phobia (an older
        caller) shows the default safe place instead: a patient who asked to
        stop never sees the feared scene.
        """
        env = state.environment
        if state.safe_place and self._kind(env) == "phobia":
            env = registry.DEFAULT_SAFE_ENVIRONMENT
        level = 0 if state.safe_place else state.level
        intensity_step = round(min(max(state.intensity, 0.0), 1.0) * 20) / 20
        key = (env, level, intensity_step, state.dials)
        if key != self._build_key:
            self._build_key = key
            self._retarget(env, level, intensity_step, state.dials)
        panel_key = (state.panel_text, state.suds_prompt)
        if panel_key != self._panel_key:
            self._set_panel(state.panel_text, state.suds_prompt)
            self._panel_key = panel_key
        self._fade = min(max(float(state.fade), 0.0), 1.0)
        for eye in self._eyes:
            u = eye.ubo_data
            u[76:79] = state.fade_rgb
            u[79] = self._fade
            u[59] = -1.0 if state.breath_phase is None else state.breath_phase % 1.0

    @staticmethod
    def _kind(env: str) -> str:
        try:
            return registry.get(env).kind
        except RenderError:
            return ""

    def _retarget(self, env: str, level: int, intensity: float, overrides) -> None:
        """New target dial values: shown at once in a new environment, eased towards within the same one."""
        try:
            target = registry.dial_values(env, level, intensity, overrides)
        except RenderError as exc:
            if self._build is None:  # nothing shown yet: the safe place, never a dead headset
                log.error("cannot show %s level %s (%s); showing the safe place", env, level, exc)
                self._retarget(registry.DEFAULT_SAFE_ENVIRONMENT, 0, 0.0, ())
                return
            log.error("cannot show %s level %s (%s); keeping %s level %s", env, level, exc, self.environment,
                      self.level)
            return
        self._level_shown = level
        if env == self._env_shown:
            self.level = level  # also when the new level's dials equal the old ones (no rebuild)
        if env != self._env_shown or self._build is None:
            self._ease_to = self._ease_from = target
            self._ease_step = EASE_STEPS
            self._rebuild(env, target)
        elif target != self._ease_to:
            self._ease_from = dict(self._shown)
            self._ease_to = target
            self._ease_t0 = None  # starts at the next frame's time
            self._ease_step = 0

    def settle(self) -> None:
        """Show the target dial values now, skipping the ease (stills: ``envs render``, the gallery)."""
        if self._ease_step < EASE_STEPS:
            self._ease_step = EASE_STEPS
            self._rebuild(self._env_shown, dict(self._ease_to))

    def _ease(self, t_s: float) -> None:
        """Advance an ease in progress to the step due at animation time ``t_s`` (a rebuild per step)."""
        if self._ease_t0 is None:
            self._ease_t0 = t_s
        step = min(EASE_STEPS, int((t_s - self._ease_t0) / EASE_S * EASE_STEPS) + 1)
        if step == self._ease_step:
            return
        self._ease_step = step
        f = step / EASE_STEPS
        f = f * f * (3.0 - 2.0 * f)  # smoothstep: starts and arrives gently
        a, b = self._ease_from, self._ease_to
        self._rebuild(self._env_shown, {k: a[k] + (b[k] - a[k]) * f for k in b})

    def _rebuild(self, env: str, values: dict[str, float]) -> None:
        try:
            build = registry.build_from_values(env, values)
            self._use_shader(registry.get(env).shader)
        except RenderError as exc:
            if self._build is None:
                raise
            log.error("cannot build %s (%s); keeping %s level %s", env, exc, self.environment, self.level)
            self._ease_step = EASE_STEPS
            return
        self._shown = dict(values)
        self._env_shown = env
        pacer = np.zeros((1, INSTANCE_FLOATS), np.float32)
        ax, ay, az = build.anchor_xyz
        fwd = np.array([-math.sin(build.anchor_yaw_rad), 0.0, -math.cos(build.anchor_yaw_rad)])
        pacer[0, 0:3] = np.array([ax, ay + 1.7, az]) + fwd * PACER_DISTANCE_M
        pacer[0, 3:6] = 0.5
        pacer[0, 9] = 1.0
        pacer[0, 18:21] = (0.55, 0.8, 1.0)
        pacer[0, 21] = PACER
        pacer[0, 23] = 1.0
        draw, shadow = [], []
        for name, rows in build.opaque.items():
            if name == "sphere" and not build.own_pacer:  # one pacer only: the scene's own, else the orb
                rows = np.concatenate([rows, pacer])
            self._upload(name, rows)
            if len(rows):
                draw.append((self._vaos[name], self._mesh_counts[name], len(rows)))
                shadow.append((self._shadow_vaos[name], self._mesh_counts[name], len(rows)))
        self._glass_rows = np.ascontiguousarray(build.transparent, np.float32)
        self._glass_sorted = self._glass_rows.copy()
        self._glass_count = len(self._glass_rows)
        self._glass_centres = self._glass_rows[:, 0:3].astype(np.float64)
        self._glass_dist = np.zeros(self._glass_count)
        self._sort_cam[:] = np.inf
        if self._glass_count:
            self._upload("glass", self._glass_rows, mesh="cube")
        self._draw_list = tuple(draw)
        self._shadow_list = tuple(shadow)
        self._build = build
        self.environment, self.level = env, self._level_shown
        self.instances = build.instance_count + (0 if build.own_pacer else 1)
        self._base_draws = 1 + len(draw) + (1 if self._glass_count else 0)
        self.rebuilds += 1
        self._anchor = translation(*build.anchor_xyz) @ rotation_y(build.anchor_yaw_rad)
        # Untracked displays may view the level from another eye height (seated at the table): a camera, not
        # the patient's feet, so a headset (tracked, its own height) ignores it.
        dh = 0.0 if build.view_eye_height_m is None else build.view_eye_height_m - STANDING_EYE_M
        self._view_anchor = self._anchor @ translation(0.0, dh, 0.0)
        self._place_panel(build)
        look = build.look
        light_vp = look_at_ortho(np.array(build.shadow_center), np.array(look.sun_dir, float), build.shadow_radius_m)
        for eye in self._eyes:
            u = eye.ubo_data
            eye.light_t[:] = light_vp.T
            u[52:55] = look.sun_dir
            u[55] = build.wind
            u[56:59] = look.sun_rgb
            u[60:63] = look.sky_zenith_rgb
            u[63] = 1.0 if look.indoor else 0.0
            u[64:67] = look.sky_horizon_rgb
            u[67] = 1.0
            u[68:71] = look.ground_ambient_rgb
            u[72:75] = look.fog_rgb
            u[75] = look.fog_density
        self._shadow_dirty = True
        fov = build.view_fovy_deg
        self._zoom_on = fov is not None
        if fov is not None:  # narrow an untracked display's view to frame the level's feared element
            z = math.tan(math.radians(DEFAULT_FOVY_DEG) / 2) / math.tan(math.radians(fov) / 2)
            self._view_zoom[:] = np.diag([z, z, 1.0, 1.0])
        log.debug("built %s level %d: %d instances, %d draws per eye", env, self.level, self.instances,
                  self.draw_calls_per_eye)

    def _set_panel(self, text: str | None, suds: bool) -> None:
        img = panel_text.rasterise(text, suds)
        self._panel_visible = bool(text) or suds
        if self._panel_visible:
            self._panel_tex.write(np.ascontiguousarray(img[::-1]).tobytes())
            self._panel_tex.build_mipmaps()

    # ----------------------------------------------------------------- frame
    def render(self, pose: HeadPose, t_s: float) -> None:
        """Draw one frame for every eye from the head pose at animation time ``t_s`` (seconds)."""
        if self._build is None:
            raise RenderError("no scene state set: call set_state() before render()")
        if self._ease_step < EASE_STEPS:
            self._ease(t_s)
        ctx = self.ctx
        # World from tracking: the scene's anchor, plus the level's default view on untracked displays.
        if pose.tracked:
            np.matmul(self._anchor, pose.tracking_from_head, out=self._tmp4)
        else:
            np.matmul(self._view_anchor, pose.tracking_from_head, out=self._world_from_tracking)
            np.matmul(self._world_from_tracking, self._view_matrix(), out=self._tmp4)
        zoom = self._zoom_on and not pose.tracked
        self._panel_for(pose.tracked)
        for i, eye in enumerate(self._eyes):
            np.matmul(self._tmp4, pose.head_from_eye[i], out=eye.world_from_eye)
            _rigid_inverse(eye.world_from_eye, eye.view)
            proj = pose.proj[i]
            if zoom:
                np.matmul(self._view_zoom, proj, out=eye.proj_zoomed)
                proj = eye.proj_zoomed
            if not np.array_equal(proj, eye.proj_seen):
                eye.proj_seen[:] = proj
                eye.proj_inv[:] = np.linalg.inv(proj)
            # std140 wants column-major: store transposes ((P V)^T = V^T P^T).
            np.matmul(eye.view.T, proj.T, out=eye.tmp)
            eye.vp_t[:] = eye.tmp
            np.matmul(eye.world_from_eye, eye.proj_inv, out=eye.tmp)
            eye.ivp_t[:] = eye.tmp.T
            eye.cam[0:3] = eye.world_from_eye[0:3, 3]
            eye.cam[3] = t_s
            eye.ubo.write(eye.ubo_data)
        if self._glass_count > 1:
            self._sort_glass(self._eyes[0].cam[0:3])
        if self._shadow_dirty:
            self._render_shadows()
        for eye in self._eyes:
            self._render_eye(ctx, eye)

    def _view_matrix(self) -> np.ndarray:
        """Head from view on untracked displays: the level's default yaw, then its pitch (cached per build)."""
        key = (self._build.gaze_yaw_rad, self._build.gaze_pitch_rad)
        if getattr(self, "_view_cache_key", None) != key:
            self._view_cache = rotation_y(key[0]) @ rotation_x(key[1])
            self._view_cache_key = key
        return self._view_cache

    def set_suds_marker(self, value: float | None) -> None:
        """Where the patient's SUDS marker sits on the panel's 0-100 scale (``None``: no marker).

        One uniform, written only when the value changed: the marker follows a
        held thumbstick every frame without re-rasterising the panel.
        """
        m = -1.0 if value is None else min(max(float(value), 0.0), 100.0) / 100.0
        if m != self._marker:
            self._marker = m
            self._marker_u.value = (m, *panel_text.SCALE_UV)

    def _sort_glass(self, cam: np.ndarray) -> None:
        """Back-to-front order of the glass panes, redone only when the eye moved more than 5 cm."""
        np.subtract(cam, self._sort_cam, out=self._sort_delta)
        if float(self._sort_delta @ self._sort_delta) < 0.0025:
            return
        self._sort_cam[:] = cam
        d = self._glass_centres - self._sort_cam
        np.einsum("ij,ij->i", d, d, out=self._glass_dist)
        order = np.argsort(-self._glass_dist, kind="stable")
        np.take(self._glass_rows, order, axis=0, out=self._glass_sorted)
        self._inst_bufs["glass"].write(self._glass_sorted)

    def _render_shadows(self) -> None:
        ctx = self.ctx
        self._shadow_fbo.use()
        self._shadow_fbo.clear(depth=1.0)
        ctx.enable_only(moderngl.DEPTH_TEST)
        self._eyes[0].ubo.bind_to_uniform_block(0)
        for vao, verts, count in self._shadow_list:
            vao.render(moderngl.TRIANGLES, vertices=verts, instances=count)
        self.shadow_draw_calls = len(self._shadow_list)
        self._shadow_dirty = False

    def _render_eye(self, ctx: moderngl.Context, eye: _Eye) -> None:
        fbo = eye.fbo
        fbo.use()
        fbo.clear(depth=1.0)
        eye.ubo.bind_to_uniform_block(0)
        self._shadow_tex.use(location=1)
        ctx.enable_only(self._flags_none)
        self._empty_vao.render(moderngl.TRIANGLES, vertices=3)
        ctx.enable_only(self._flags_opaque)
        for vao, verts, count in self._draw_list:
            vao.render(moderngl.TRIANGLES, vertices=verts, instances=count)
        if self._glass_count:
            ctx.enable_only(self._flags_blend)
            ctx.blend_func = moderngl.DEFAULT_BLENDING
            fbo.depth_mask = False
            self._vaos["glass"].render(moderngl.TRIANGLES, vertices=self._mesh_counts["cube"], instances=self._glass_count)
            fbo.depth_mask = True
        if self._panel_visible or self._fade > 0.0:
            ctx.enable_only(self._flags_overlay)
            ctx.blend_func = moderngl.DEFAULT_BLENDING
            if self._panel_visible:
                self._panel_tex.use(location=2)
                self._panel_vao.render(moderngl.TRIANGLES, vertices=6)
            if self._fade > 0.0:
                self._fade_vao.render(moderngl.TRIANGLES, vertices=3)
        if eye.msaa:
            ctx.copy_framebuffer(eye.resolve_fbo, fbo)

    def _place_panel(self, build: SceneBuild) -> None:
        """Where the panel stands: for a headset 1.4 m ahead of the standing point, just below eye height, facing
        the patient; on untracked displays the same, but ahead of the level's default view (which may look down
        at a spider or through a glass floor), where it shows the same whether or not that view is zoomed."""
        tilt = math.atan2(STANDING_EYE_M - PANEL_EYE_HEIGHT_M, PANEL_DISTANCE_M)  # face a standing patient's eyes
        shape = np.diag([1.0, 0.5, 1.0, 1.0])
        tracked = self._anchor @ translation(0.0, PANEL_EYE_HEIGHT_M, -PANEL_DISTANCE_M) @ rotation_x(tilt) @ shape
        z = 1.0
        if build.view_fovy_deg is not None:
            z = math.tan(math.radians(DEFAULT_FOVY_DEG) / 2) / math.tan(math.radians(build.view_fovy_deg) / 2)
        # z times further, same size and drop: after the view's z-fold zoom it sits where it would unzoomed.
        drop_m = STANDING_EYE_M - PANEL_EYE_HEIGHT_M
        view = (self._view_anchor @ translation(0.0, STANDING_EYE_M, 0.0) @ self._view_matrix()
                @ translation(0.0, -drop_m, -PANEL_DISTANCE_M * z)
                @ rotation_x(math.atan2(drop_m, PANEL_DISTANCE_M * z)) @ shape)
        self._panel_models = tuple(np.ascontiguousarray(m.T, np.float32).tobytes() for m in (view, tracked))
        self._panel_tracked: bool | None = None  # written by the next frame, for its kind of pose

    def _panel_for(self, tracked: bool) -> None:
        if tracked != self._panel_tracked:
            self._panel_tracked = tracked
            self._panel_prog["u_model"].write(self._panel_models[int(tracked)])

    @property
    def dials_shown(self) -> dict[str, float]:
        """The dial values the scene on screen was built from (they lag a change while it is eased in)."""
        return dict(self._shown)

    @property
    def draw_calls_per_eye(self) -> int:
        """Draws issued per eye by the last frame's scene (sky, meshes, glass, panel, fade)."""
        return self._base_draws + int(self._panel_visible) + int(self._fade > 0.0)

    # ----------------------------------------------------------------- readback
    def read_rgb(self, eye: int = 0) -> np.ndarray:
        """The last frame of one eye as an (H, W, 3) uint8 array, row 0 at the top (captures, tests)."""
        tex = self._eyes[eye].texture
        data = np.frombuffer(tex.read(), np.uint8).reshape(self.eye_size[1], self.eye_size[0], 4)
        return np.ascontiguousarray(data[::-1, :, :3])


def _rigid_inverse(m: np.ndarray, out: np.ndarray) -> None:
    """Inverse of a rotation+translation matrix without a general 4x4 inverse (no allocation beyond views)."""
    out[:3, :3] = m[:3, :3].T
    np.matmul(out[:3, :3], m[:3, 3], out=out[:3, 3])
    np.negative(out[:3, 3], out=out[:3, 3])
    out[3, :3] = 0.0
    out[3, 3] = 1.0
