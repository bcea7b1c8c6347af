"""GLSL 3.30 sources of the renderer: instanced lit scene, shadow depth, sky, panel and fade.

All passes read one std140 uniform block (``Frame``) written once per eye from a
preallocated numpy array, so a frame sets no per-object uniforms. The scene and
shadow programs are assembled per environment (:func:`scene_sources`): the
shared code calls ``env_vertex`` and ``env_material``, which an environment may
define in its :class:`environments.environment.EnvironmentShader`; nothing
environment-specific lives here.
"""

from __future__ import annotations

FRAME_BLOCK = """
layout(std140) uniform Frame {
    mat4 u_vp;        // projection * view of this eye
    mat4 u_ivp;       // inverse of u_vp (sky rays)
    mat4 u_light_vp;  // sun's orthographic view-projection (shadow map)
    vec4 u_cam;       // eye position xyz, w = animation time (s)
    vec4 u_sun_dir;   // towards the sun xyz, w = wind 0..1
    vec4 u_sun_rgb;   // rgb, w = breath phase 0..1 (< 0: no pacer)
    vec4 u_zenith;    // sky rgb at the zenith, w = 1 for indoor scenes
    vec4 u_horizon;   // sky rgb at the horizon, w = shadows on (1) / off (0)
    vec4 u_ground;    // ambient from below rgb
    vec4 u_fog;       // rgb, w = density per metre
    vec4 u_fade;      // rgb, w = amount 0..1
};
"""

INSTANCE_TRANSFORM = """
in vec3 in_pos;
in vec3 in_normal;
in vec3 i_offset;
in vec3 i_scale;
in vec4 i_quat;
in vec4 i_group;
in vec4 i_motion;
in vec3 i_color;
in vec3 i_mat;
in vec4 i_anim;  // free for the environment's env_vertex (e.g. a leg's hip and gait phase)

vec3 qrot(vec4 q, vec3 v) { return v + 2.0 * cross(q.xyz, cross(q.xyz, v) + q.w * v); }

float breath_curve(float ph) {
    // 40 % in-breath, 60 % out-breath, eased: 0 = empty lungs, 1 = full.
    return ph < 0.4 ? 0.5 - 0.5 * cos(3.14159265 * ph / 0.4) : 0.5 + 0.5 * cos(3.14159265 * (ph - 0.4) / 0.6);
}

// World position and normal of this vertex of this instance.
void instance_world(out vec3 world, out vec3 normal, out vec3 local) {
    float t = u_cam.w;
    float wind = u_sun_dir.w;
    vec3 scale = i_scale;
    if (i_mat.x == 8.0) {
        float ph = u_sun_rgb.w;
        scale *= ph < 0.0 ? 0.0 : 0.45 + 0.55 * breath_curve(ph);
    }
    vec3 p = in_pos * scale;
    local = in_pos * i_scale;
    if (i_motion.w > 0.0) {
        // Wind sway, growing towards the top (trees) or the free end (flags).
        float h = clamp(in_pos.y + 0.5, 0.0, 1.0);
        float free_end = clamp(in_pos.x + 0.5, 0.0, 1.0);
        float s = sin(t * (1.3 + 2.0 * wind) + i_motion.z);
        p.x += wind * i_motion.w * h * s * 0.08 * i_scale.y;
        p.z += wind * i_motion.w * free_end * sin(t * (4.0 + 6.0 * wind) + in_pos.x * 5.0 + i_motion.z) * 0.12;
    }
    vec3 n = qrot(i_quat, in_normal / max(scale, vec3(1e-4)));
    p = qrot(i_quat, p) + i_offset;
    float yaw = i_group.w;
    vec3 origin = i_group.xyz;
    float travelled = 0.0;  // metres this group has moved along its path (drives the legs' gait)
    if (i_motion.x > 0.0) {
        // Circle of radius motion.x around the origin at motion.y rad/s, facing the direction of travel.
        float a = t * i_motion.y + i_motion.z;
        origin += i_motion.x * vec3(cos(a), 0.0, -sin(a));
        yaw += a + (i_motion.y < 0.0 ? 3.14159265 : 0.0);
        travelled = t * abs(i_motion.y) * i_motion.x;
    } else if (i_motion.x < 0.0) {
        // Dash: out along the heading for -motion.x metres and back, at motion.y m/s on average, in four
        // darting bursts per round trip with still pauses between them (how spiders move).
        float len = -i_motion.x;
        float xn = (t * i_motion.y / (2.0 * len) + i_motion.z) * 4.0;
        float g = (floor(xn) + smoothstep(0.45, 1.0, fract(xn))) * 0.25;
        float c = fract(g) * 2.0;
        origin += vec3(-sin(yaw), 0.0, -cos(yaw)) * (c < 1.0 ? c : 2.0 - c) * len;
        yaw += c < 1.0 ? 0.0 : 3.14159265;
        travelled = g * 2.0 * len;
    }
    env_vertex(p, n, i_anim, travelled, t);  // the environment's own deformation (e.g. a leg's gait)
    float c = cos(yaw), s = sin(yaw);
    mat3 ry = mat3(c, 0.0, -s, 0.0, 1.0, 0.0, s, 0.0, c);
    world = ry * p + origin;
    normal = normalize(ry * n);
}
"""

_SCENE_VS_MAIN = """
out vec3 v_world;
out vec3 v_normal;
out vec3 v_local;
out vec3 v_color;
flat out vec3 v_mat;
out vec4 v_light;
void main() {
    vec3 world, normal, local;
    instance_world(world, normal, local);
    v_world = world;
    v_normal = normal;
    v_local = local;
    v_color = i_color;
    v_mat = i_mat;
    v_light = u_light_vp * vec4(world, 1.0);
    gl_Position = u_vp * vec4(world, 1.0);
}
"""

_SCENE_FS_HEAD = """
uniform sampler2DShadow u_shadow;
in vec3 v_world;
in vec3 v_normal;
in vec3 v_local;
in vec3 v_color;
flat in vec3 v_mat;
in vec4 v_light;
out vec4 f_color;

float shadow_term(vec3 n, vec3 l) {
    if (u_horizon.w < 0.5) return 1.0;
    vec3 sc = v_light.xyz / v_light.w * 0.5 + 0.5;
    if (any(lessThan(sc, vec3(0.0))) || any(greaterThan(sc, vec3(1.0)))) return 1.0;
    float bias = 0.0015 + 0.003 * (1.0 - max(dot(n, l), 0.0));
    vec2 texel = 1.0 / vec2(textureSize(u_shadow, 0));
    float s = 0.0;
    s += texture(u_shadow, vec3(sc.xy + vec2(-0.5, -0.5) * texel, sc.z - bias));
    s += texture(u_shadow, vec3(sc.xy + vec2( 0.5, -0.5) * texel, sc.z - bias));
    s += texture(u_shadow, vec3(sc.xy + vec2(-0.5,  0.5) * texel, sc.z - bias));
    s += texture(u_shadow, vec3(sc.xy + vec2( 0.5,  0.5) * texel, sc.z - bias));
    return s * 0.25;
}

void main() {
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;
    vec3 l = normalize(u_sun_dir.xyz);
    vec3 v = normalize(u_cam.xyz - v_world);
    vec3 base = v_color;
    float pattern = v_mat.x;
    float spec_k = 0.04;
    float shininess = 16.0;
    float alpha = v_mat.z;
    float ao = 1.0;
    if (pattern == 1.0) {            // facade windows
        if (abs(n.y) < 0.5) {
            float u = abs(n.x) > 0.5 ? v_world.z : v_world.x;
            vec2 cell = vec2(fract(u / 3.0), fract(v_world.y / 3.5));
            float win = step(0.18, cell.x) * step(cell.x, 0.82) * step(0.3, cell.y) * step(cell.y, 0.9);
            float lit = step(0.82, hash(floor(vec2(u / 3.0, v_world.y / 3.5)) + floor(v_world.xz * 0.01)));
            vec3 glass = mix(vec3(0.08, 0.11, 0.16), u_horizon.rgb * 0.55, 0.35 + 0.3 * n.z * n.z) + lit * vec3(0.35, 0.3, 0.2);
            base = mix(base, glass, win);
            spec_k = mix(0.04, 0.5, win);
            shininess = mix(16.0, 96.0, win);
        } else {
            base *= 0.8;
        }
        ao = mix(0.75, 1.0, clamp(v_world.y / 8.0, 0.0, 1.0));  // darker at street level
    } else if (pattern == 2.0) {     // paving tiles
        vec2 g = abs(fract(v_world.xz) - 0.5);
        base *= 0.92 + 0.08 * hash(floor(v_world.xz)) - 0.25 * step(0.47, max(g.x, g.y));
    } else if (pattern == 3.0) {     // grass / foliage
        base *= 0.82 + 0.3 * hash(floor(v_world.xz * 1.5)) * (0.6 + 0.4 * hash(floor(v_world.xz * 0.2)));
    } else if (pattern == 4.0) {     // still water
        float ripple = sin(v_world.x * 1.7 + u_cam.w * 0.8) * sin(v_world.z * 1.3 - u_cam.w * 0.6);
        n = normalize(vec3(0.03 * ripple, 1.0, 0.03 * ripple));
        float fres = pow(1.0 - max(dot(n, v), 0.0), 4.0);
        base = mix(base, mix(u_horizon.rgb, u_zenith.rgb, 0.6), 0.15 + 0.7 * fres);
        spec_k = 0.9; shininess = 220.0;
    } else if (pattern == 5.0) {     // glass
        float fres = pow(1.0 - max(dot(n, v), 0.0), 3.0);
        alpha = clamp(alpha + 0.5 * fres, 0.0, 0.85);
        spec_k = 0.8; shininess = 128.0;
    } else if (pattern == 6.0) {     // road with dashed centre line
        float line = step(abs(v_local.z), 0.12) * step(0.5, fract(v_local.x / 6.0));
        base = mix(base, vec3(0.85, 0.82, 0.6), line);
    } else if (pattern == 7.0) {     // wooden planks
        float plank = fract(v_local.z * 4.0 + 0.5 * floor(v_local.x / 1.7));
        base *= 0.85 + 0.15 * sin(v_local.x * 9.0 + 3.0 * hash(vec2(floor(v_local.z * 4.0)))) - 0.3 * step(0.94, plank);
    } else if (pattern == 9.0) {     // fabric / wallpaper stripes
        base *= 0.9 + 0.1 * step(0.5, fract((v_world.x + v_world.z) * 2.0));
    } else if (pattern == 10.0) {    // carpet
        base *= 0.9 + 0.12 * hash(floor(v_world.xz * 250.0)) * (0.7 + 0.3 * hash(floor(v_world.xz * 12.0)));
    } else if (pattern >= 16.0) {    // the environment's own materials
        env_material(pattern, v_local, v_world, base, spec_k, shininess);
    }
    vec3 color;
    if (pattern == 8.0) {            // breathing pacer: self-lit, soft rim
        float rim = pow(1.0 - max(dot(n, v), 0.0), 2.0);
        color = base * (0.85 + 0.5 * rim);
    } else {
        float ndl = max(dot(n, l), 0.0);
        float sh = ndl > 0.0 ? shadow_term(n, l) : 0.0;
        vec3 sky_amb = mix(u_horizon.rgb, u_zenith.rgb, 0.5) * 0.55;
        // Indoors the walls bounce warm light from every side; outdoors the sky lights from above.
        vec3 amb = (u_zenith.w > 0.5 ? u_ground.rgb * (0.85 + 0.15 * n.y) : mix(u_ground.rgb, sky_amb, n.y * 0.5 + 0.5)) * ao;
        vec3 h = normalize(l + v);
        float spec = spec_k * pow(max(dot(n, h), 0.0), shininess) * sh * ndl;
        color = base * (amb + u_sun_rgb.rgb * ndl * sh) + u_sun_rgb.rgb * spec + base * v_mat.y;
    }
    float d = length(v_world - u_cam.xyz) * u_fog.w;
    color = mix(color, u_fog.rgb, 1.0 - exp(-d * d));
    f_color = vec4(pow(max(color, vec3(0.0)), vec3(1.0 / 2.2)), alpha);
}
"""

_SHADOW_VS_MAIN = """
void main() {
    vec3 world, normal, local;
    instance_world(world, normal, local);
    // Glass, the pacer and moving things cast no shadow: the map is drawn once per level, not per frame.
    bool skip = i_mat.z < 1.0 || i_mat.x == 8.0 || i_motion.x != 0.0;
    gl_Position = skip ? vec4(2.0, 2.0, 2.0, 1.0) : u_light_vp * vec4(world, 1.0);
}
"""

DEFAULT_ENV_VERTEX = """
void env_vertex(inout vec3 p, inout vec3 n, vec4 anim, float travelled, float t) {}
"""

DEFAULT_ENV_FRAGMENT = """
bool env_material(float pattern, vec3 local, vec3 world, inout vec3 base, inout float spec_k, inout float shininess) {
    return false;
}
"""

FS_COMMON = """
float hash(vec2 p) { return fract(sin(dot(p, vec2(127.1, 311.7))) * 43758.5453); }
"""


def scene_sources(env_vertex: str = "", env_fragment: str = "") -> tuple[str, str, str]:
    """(scene vertex, scene fragment, shadow vertex) sources with an environment's hooks compiled in.

    Empty hooks take the shared no-op versions. The shadow pass gets the same
    ``env_vertex`` so animated parts cast the shadows of where they are drawn.
    """
    vhook = env_vertex or DEFAULT_ENV_VERTEX
    fhook = env_fragment or DEFAULT_ENV_FRAGMENT
    head = "#version 330 core\n" + FRAME_BLOCK
    transform = INSTANCE_TRANSFORM.replace("// World position and normal", vhook + "\n// World position and normal", 1)
    return (head + transform + _SCENE_VS_MAIN,
            head + _SCENE_FS_HEAD.replace("out vec4 f_color;", "out vec4 f_color;\n" + FS_COMMON + fhook, 1),
            head + transform + _SHADOW_VS_MAIN)


SHADOW_FS = """#version 330 core
void main() {}
"""

FULLSCREEN_VS = """#version 330 core
out vec2 v_ndc;
void main() {
    vec2 p = vec2((gl_VertexID == 1) ? 3.0 : -1.0, (gl_VertexID == 2) ? 3.0 : -1.0);
    v_ndc = p;
    gl_Position = vec4(p, 1.0, 1.0);
}
"""

SKY_FS = "#version 330 core\n" + FRAME_BLOCK + """
in vec2 v_ndc;
out vec4 f_color;
void main() {
    vec4 p = u_ivp * vec4(v_ndc, 1.0, 1.0);
    vec3 dir = normalize(p.xyz / p.w - u_cam.xyz);
    float up = dir.y;
    vec3 col = mix(u_horizon.rgb, u_zenith.rgb, pow(clamp(up, 0.0, 1.0), 0.55));
    col = mix(col, u_ground.rgb * 1.5, smoothstep(0.0, -0.08, up));
    vec3 l = normalize(u_sun_dir.xyz);
    float sd = max(dot(dir, l), 0.0);
    col += u_sun_rgb.rgb * (pow(sd, 900.0) * 6.0 + pow(sd, 12.0) * 0.18);
    col = mix(col, u_fog.rgb, 0.5 * (1.0 - smoothstep(0.0, 0.25, abs(up))));
    f_color = vec4(pow(col, vec3(1.0 / 2.2)), 1.0);
}
"""

FADE_FS = "#version 330 core\n" + FRAME_BLOCK + """
in vec2 v_ndc;
out vec4 f_color;
void main() { f_color = vec4(u_fade.rgb, u_fade.w); }
"""

PANEL_VS = "#version 330 core\n" + FRAME_BLOCK + """
uniform mat4 u_model;
in vec2 in_uv;
out vec2 v_uv;
void main() {
    v_uv = in_uv;
    gl_Position = u_vp * (u_model * vec4(in_uv - 0.5, 0.0, 1.0));
}
"""

PANEL_FS = """#version 330 core
uniform sampler2D u_panel;
uniform vec4 u_marker;  // x: SUDS marker 0..1 along the scale (< 0: none); y: scale centre v; zw: scale x0, x1 in uv
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec4 c = texture(u_panel, v_uv);
    if (u_marker.x >= 0.0) {
        // The patient's marker on the 0-100 scale: a white needle with a dark outline, drawn here so that
        // moving it (every frame while the thumbstick is held) never re-rasterises the panel.
        float x = mix(u_marker.z, u_marker.w, u_marker.x);
        float dx = abs(v_uv.x - x);
        float dy = abs(v_uv.y - u_marker.y);
        if (dy < 0.08 && dx < 0.016) c = vec4(0.08, 0.08, 0.1, 1.0);
        if (dy < 0.07 && dx < 0.01) c = vec4(1.0, 1.0, 1.0, 1.0);
    }
    f_color = c;
}
"""

BLIT_VS = """#version 330 core
uniform vec4 u_rect;  // x0, y0, x1, y1 in NDC
out vec2 v_uv;
void main() {
    vec2 uv = vec2((gl_VertexID == 1 || gl_VertexID == 2) ? 1.0 : 0.0, (gl_VertexID >= 2) ? 1.0 : 0.0);
    v_uv = uv;
    gl_Position = vec4(mix(u_rect.xy, u_rect.zw, uv), 0.0, 1.0);
}
"""

BLIT_FS = """#version 330 core
uniform sampler2D u_tex;
in vec2 v_uv;
out vec4 f_color;
void main() { f_color = vec4(texture(u_tex, v_uv).rgb, 1.0); }
"""
